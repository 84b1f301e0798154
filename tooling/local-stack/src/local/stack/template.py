"""template.yaml as the local stack sees it: SAM's own translation to CloudFormation, then what it wires.

`read_template()` translates the SAM template offline with samtranslator, the library behind `sam deploy`
and `sam validate` (Globals merged, implicit APIs, events, layers, roles and permissions expanded into plain
CloudFormation), and reads the translated resources into a `StackModel`: functions (AWS::Lambda::Function),
SQS event source mappings (AWS::Lambda::EventSourceMapping), EventBridge rules and their targets
(AWS::Events::Rule, scheduled ones included), EventBridge Scheduler schedules (AWS::Scheduler::Schedule),
asynchronous invoke configs (AWS::Lambda::EventInvokeConfig) and REST APIs (AWS::ApiGateway::RestApi, whose
OpenAPI Body apigw.py serves). No AWS call is made: code locations become placeholders that point back at the
local folders, and managed policies are not looked up (IAM is not emulated).

Values that depend on the running stack (queue URLs, secret ARNs, parameter values such as the ERP's URL)
are evaluated on demand against `LocalValues` (cfn.py evaluates the intrinsics), which the stack fills in as
it creates things; offline (no stack running) they are predicted from the same naming rules, which is what
the reader's tests check.

Everything the translated template declares is either wired, deliberately not needed locally (log groups,
alarms, IAM: listed in NOT_EMULATED), or reported in `StackModel.problems` with its logical id: nothing is
ignored silently.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cfn import ACCOUNT_ID, Evaluator, Unsupported, referenced_logical_id
from .project import find_template

STACK_NAME = "salesforce-integration"  # samconfig's default stack: names in sample events match local ones
REGION = "eu-west-1"
IMPLICIT_API = "ServerlessRestApi"  # SAM's logical id of the API that Api events without RestApiId share
LOCAL_CODE_BUCKET = "local-code"  # CodeUri/ContentUri become s3://local-code/<folder> for the translation

# Resource types the stack creates in moto or emulates itself.
WIRED = {
    "AWS::Lambda::Function", "AWS::Lambda::LayerVersion", "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::EventInvokeConfig", "AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::Events::EventBus",
    "AWS::Events::Rule", "AWS::SecretsManager::Secret", "AWS::Scheduler::Schedule", "AWS::Scheduler::ScheduleGroup",
    "AWS::SNS::Topic", "AWS::SSM::Parameter", "AWS::S3::Bucket", "AWS::ApiGateway::RestApi",
    "AWS::ApiGateway::Stage", "AWS::ApiGateway::Deployment",
}
# Resource types with no local effect: what they do (permissions, retention, alarms, quotas) is not emulated.
NOT_EMULATED = {
    "AWS::Logs::LogGroup", "AWS::Logs::MetricFilter", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm",
    "AWS::CloudWatch::Dashboard", "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy",
    "AWS::Lambda::Permission", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::SNS::Subscription",
    "AWS::Events::EventBusPolicy", "AWS::KMS::Key", "AWS::KMS::Alias", "AWS::ApiGateway::UsagePlan",
    "AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlanKey", "AWS::ApiGateway::Account",
    "AWS::SecretsManager::RotationSchedule", "AWS::Lambda::Version", "AWS::Lambda::Alias",
}
# Who may invoke a function (AWS::Lambda::Permission's principal) and is emulated: API Gateway and EventBridge.
INVOKERS = {"apigateway.amazonaws.com", "events.amazonaws.com", "scheduler.amazonaws.com"}


class TemplateInvalid(ValueError):
    """SAM refused the template (the message lists SAM's own errors, as `sam validate` prints them)."""


# -- the model ----------------------------------------------------------------------------------------------


@dataclass
class SqsEvent:
    """An SQS event source mapping (SAM's SQS event, or an AWS::Lambda::EventSourceMapping of the template)."""

    name: str  # the mapping's logical id (SAM's: <Function><Event>)
    queue: str  # logical id
    batch_size: int = 10
    report_batch_item_failures: bool = False
    enabled: bool = True
    max_concurrency: int = 2


@dataclass
class RuleEvent:
    """A target of an EventBridge rule that is a function (SAM's EventBridgeRule/CloudWatchEvent events)."""

    name: str  # the target's Id
    rule: str  # logical id of the rule (SAM's: <Function><Event>)
    bus: str  # physical bus name ("default" or the bus's name)
    pattern: dict[str, Any]
    input: str | None = None
    input_path: str | None = None
    input_transformer: dict[str, Any] | None = None
    enabled: bool = True


@dataclass
class ScheduleEvent:
    """A schedule that invokes the function: a scheduled rule (SAM Schedule) or an EventBridge Scheduler
    schedule (SAM ScheduleV2, AWS::Scheduler::Schedule)."""

    name: str  # the logical id to fire it by (SAM's: <Function><Event>)
    kind: str  # "rule" (an EventBridge scheduled rule) or "scheduler" (EventBridge Scheduler)
    expression: str
    input: str | None = None
    enabled: bool = True


@dataclass
class Function:
    logical_id: str
    name: str
    code_uri: Path
    handler: str
    runtime: str
    timeout: int
    memory: int
    layers: list[Path]
    environment: dict[str, Any]  # raw: evaluate with StackModel.environment()
    sqs_events: list[SqsEvent] = field(default_factory=list)
    rule_events: list[RuleEvent] = field(default_factory=list)
    schedules: list[ScheduleEvent] = field(default_factory=list)
    maximum_retry_attempts: int = 2  # asynchronous invocations (EventBridge, schedules)
    on_failure: Any = None  # raw ARN value: the DeadLetterConfig target or the OnFailure destination (SQS)
    on_failure_kind: str = ""  # "dlq" (the event, with error attributes) or "destination" (an invocation record)
    reserved_concurrency: int | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.name}"


@dataclass
class RestApi:
    logical_id: str
    stage: str
    definition: dict[str, Any] | None  # the Body (OpenAPI/Swagger with API Gateway's extensions), raw
    properties: dict[str, Any] = field(default_factory=dict)
    stage_variables: dict[str, str] = field(default_factory=dict)  # the stage's Variables

    @property
    def id(self) -> str:
        return "l" + hashlib.sha1(self.logical_id.encode()).hexdigest()[:9]  # noqa: S324 - an id, not security


@dataclass
class Resource:
    logical_id: str
    type: str
    properties: dict[str, Any]
    name: str  # physical name


class LocalValues:
    """What !Ref and !GetAtt give for each resource, locally; parameters' local values."""

    def __init__(self, model: StackModel, aws_endpoint: str = "http://127.0.0.1:5000",
                 parameters: dict[str, str] | None = None):
        self.model = model
        self.aws_endpoint = aws_endpoint.rstrip("/")
        self.parameters: dict[str, Any] = dict(parameters or {})
        self.actual: dict[str, str] = {}  # logical id -> Ref value known only once created (secret ARNs)

    def ref(self, logical_id: str) -> Any:
        m = self.model
        if logical_id in self.actual:
            return self.actual[logical_id]
        if logical_id in m.apis:
            return m.apis[logical_id].id
        res = m.resources[logical_id]
        t = res.type
        if t == "AWS::SQS::Queue":
            return f"{self.aws_endpoint}/{ACCOUNT_ID}/{res.name}"
        if t in ("AWS::SecretsManager::Secret", "AWS::SNS::Topic", "AWS::Lambda::LayerVersion", "AWS::IAM::Policy"):
            return self.getatt(logical_id, "Arn")
        if t == "AWS::ApiGateway::Stage":
            return str(self.model.evaluate(res.properties.get("StageName", res.name), logical_id))
        return res.name

    def getatt(self, logical_id: str, attribute: str) -> Any:
        m = self.model
        if logical_id in m.apis:
            if attribute == "RootResourceId":
                return "root"
            raise KeyError(attribute)
        res = m.resources[logical_id]
        t, name = res.type, res.name
        service = {"AWS::SQS::Queue": "sqs", "AWS::SNS::Topic": "sns"}.get(t)
        if service and attribute in ("Arn", "TopicArn"):
            return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{name}"
        if t == "AWS::Lambda::Function" and attribute == "Arn":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
        if t == "AWS::SQS::Queue":
            return {"QueueName": name, "QueueUrl": self.ref(logical_id)}[attribute]
        if t == "AWS::DynamoDB::Table":
            arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"
            return {"Arn": arn, "StreamArn": f"{arn}/stream/local"}[attribute]
        if t == "AWS::Events::EventBus":
            return {"Arn": f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{name}", "Name": name}[attribute]
        if t == "AWS::Events::Rule" and attribute == "Arn":
            bus = m.bus_name(res.properties.get("EventBusName", "default"), logical_id)
            prefix = "" if bus == "default" else f"{bus}/"
            return f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{prefix}{name}"
        if t == "AWS::SecretsManager::Secret" and attribute in ("Arn", "Id"):
            return self.actual.get(logical_id, f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{name}-local0")
        if t == "AWS::Lambda::LayerVersion":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{name}:1"
        if t == "AWS::Scheduler::Schedule" and attribute == "Arn":
            return f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/default/{name}"
        if t == "AWS::SSM::Parameter":
            return {"Value": res.properties.get("Value"), "Type": res.properties.get("Type", "String")}[attribute]
        if t == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{name}"
        if t == "AWS::IAM::Role" and attribute == "Arn":
            return f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
        if t == "AWS::Logs::LogGroup" and attribute == "Arn":
            return f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*"
        if attribute == "Arn":
            return f"arn:aws:local:{REGION}:{ACCOUNT_ID}:{logical_id}"
        raise KeyError(attribute)

    def evaluator(self) -> Evaluator:
        params = {name: p.get("Default") for name, p in self.model.parameters.items()}
        params.update({k: v for k, v in self.parameters.items() if k in self.model.parameters})
        for name, value in params.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                params[name] = str(value)
            if self.model.parameters[name].get("Type", "").startswith("List<") or \
                    self.model.parameters[name].get("Type") == "CommaDelimitedList":
                params[name] = str(value).split(",") if value is not None else []
        return Evaluator(parameters=params, conditions=self.model.conditions, mappings=self.model.mappings,
                         ref=self.ref, getatt=self.getatt, region=REGION, stack_name=STACK_NAME)


class StackModel:
    """The translated template; see the module docstring."""

    def __init__(self, path: Path, parameters: dict[str, str] | None = None,
                 aws_endpoint: str = "http://127.0.0.1:5000"):
        self.path = Path(path).resolve()
        self.base_dir = self.path.parent
        self.doc: dict[str, Any] = translate(self.path, parameters)
        self.parameters: dict[str, dict[str, Any]] = self.doc.get("Parameters") or {}
        self.conditions: dict[str, Any] = self.doc.get("Conditions") or {}
        self.mappings: dict[str, Any] = self.doc.get("Mappings") or {}
        self.problems: list[str] = []
        self.resources: dict[str, Resource] = {}
        self.functions: dict[str, Function] = {}
        self.apis: dict[str, RestApi] = {}
        self.rule_targets: list[tuple[str, str, str]] = []  # (rule logical id, target id, queue logical id)
        self.values = LocalValues(self, aws_endpoint, parameters)
        self._parse()

    # -- helpers -------------------------------------------------------------------------------------------

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    def evaluate(self, value: Any, where: str = "") -> Any:
        return self.values.evaluator().evaluate(value, where)

    def try_evaluate(self, value: Any, where: str, default: Any = None) -> Any:
        try:
            return self.evaluate(value, where)
        except Unsupported as exc:
            self.problem(str(exc))
            return default

    def environment(self, function: str) -> dict[str, str]:
        """The function's environment variables, evaluated against the current local values."""
        fn = self.functions[function]
        env = self.evaluate(fn.environment, f"{function}.Environment.Variables")
        return {k: _env_string(v) for k, v in env.items()}

    def missing_parameters(self) -> list[str]:
        """Parameters without a default and without a local value: functions that use them will fail."""
        return [name for name, p in self.parameters.items()
                if "Default" not in p and name not in self.values.parameters]

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type in types]

    def queue_logical_id(self, value: Any, where: str) -> str | None:
        logical = referenced_logical_id(value)
        if logical and logical in self.resources and self.resources[logical].type == "AWS::SQS::Queue":
            return logical
        if isinstance(value, str):  # a literal ARN or URL of a queue declared here
            for res in self.of_type("AWS::SQS::Queue"):
                if value.endswith(f":{res.name}") or value.endswith(f"/{res.name}"):
                    return res.logical_id
        self.problem(f"{where}: the source {value!r} is not a queue declared in the template, so it is not wired "
                     "locally")
        return None

    def bus_name(self, value: Any, where: str) -> str:
        """The physical name of the bus an EventBusName (a name, an ARN or a reference) means."""
        logical = referenced_logical_id(value)
        if logical and logical in self.resources:
            return self.resources[logical].name
        value = self.try_evaluate(value, where, "default")
        text = str(value or "default")
        return text.split(":event-bus/", 1)[1] if text.startswith("arn:") and ":event-bus/" in text else text

    # -- reading the translated template ---------------------------------------------------------------------

    def _parse(self) -> None:
        for logical_id, res in (self.doc.get("Resources") or {}).items():
            rtype = res.get("Type", "")
            if "Condition" in res:
                try:
                    if not self.values.evaluator().condition(res["Condition"]):
                        continue
                except Unsupported as exc:
                    self.problem(f"{logical_id}: {exc}")
            props = res.get("Properties") or {}
            self.resources[logical_id] = Resource(logical_id, rtype, props,
                                                  self._physical_name(logical_id, rtype, props))
            if rtype not in WIRED and rtype not in NOT_EMULATED:
                self.problem(f"{logical_id}: resource type {rtype} is not emulated by the local stack")
        for res in self.of_type("AWS::Lambda::Function"):
            self.functions[res.logical_id] = self._function(res)
        for res in self.of_type("AWS::ApiGateway::RestApi"):
            self.apis[res.logical_id] = self._api(res)
        readers = {"AWS::Lambda::EventSourceMapping": self._event_source_mapping, "AWS::Events::Rule": self._rule,
                   "AWS::Scheduler::Schedule": self._scheduler, "AWS::Lambda::EventInvokeConfig": self._invoke_config,
                   "AWS::Lambda::Permission": self._permission}
        for res in self.resources.values():
            if res.type in readers:
                readers[res.type](res.logical_id, res.properties)

    def _physical_name(self, logical_id: str, rtype: str, props: dict[str, Any]) -> str:
        key = {"AWS::SQS::Queue": "QueueName", "AWS::DynamoDB::Table": "TableName", "AWS::Events::EventBus": "Name",
               "AWS::Events::Rule": "Name", "AWS::SecretsManager::Secret": "Name", "AWS::SNS::Topic": "TopicName",
               "AWS::Lambda::Function": "FunctionName", "AWS::Scheduler::Schedule": "Name",
               "AWS::SSM::Parameter": "Name", "AWS::S3::Bucket": "BucketName", "AWS::Logs::LogGroup": "LogGroupName",
               "AWS::Lambda::LayerVersion": "LayerName", "AWS::Scheduler::ScheduleGroup": "Name",
               "AWS::IAM::Role": "RoleName", "AWS::ApiGateway::Stage": "StageName"}.get(rtype)
        if key and key in props:
            try:
                value = self.evaluate(props[key], f"{logical_id}.{key}")
                if isinstance(value, str):
                    return value
            except Unsupported as exc:
                self.problem(str(exc))
        name = f"{STACK_NAME}-{logical_id}"
        if rtype == "AWS::SQS::Queue" and _truthy(props.get("FifoQueue")):
            name += ".fifo"
        if rtype == "AWS::S3::Bucket":
            name = name.lower()
        return name

    def _function(self, res: Resource) -> Function:
        where, props = res.logical_id, res.properties
        code_uri = _local_folder(props.get("Code"))
        if code_uri is None:
            self.problem(f"{where}: its code is not a local folder (CodeUri); the function cannot run locally")
        if props.get("PackageType") == "Image":
            self.problem(f"{where}: image functions are not supported locally")
        runtime = str(props.get("Runtime", ""))
        if runtime and not runtime.startswith("python"):
            self.problem(f"{where}: runtime {runtime} is not Python; the local stack runs Python functions only")
        layers = []
        for i, layer in enumerate(props.get("Layers") or []):
            target = self.resources.get(referenced_logical_id(layer) or "")
            folder = _local_folder(target.properties.get("Content")) if target else None
            if folder is not None:
                layers.append((self.base_dir / folder).resolve())
            else:
                self.problem(f"{where}.Layers[{i}]: {layer!r} is not a layer built from a local folder; not loaded")
        fn = Function(
            logical_id=where, name=res.name, code_uri=(self.base_dir / (code_uri or ".")).resolve(),
            handler=str(props.get("Handler", "")), runtime=runtime,
            timeout=int(self.try_evaluate(props.get("Timeout", 3), f"{where}.Timeout", 3)),
            memory=int(self.try_evaluate(props.get("MemorySize", 128), f"{where}.MemorySize", 128)),
            layers=layers, environment=((props.get("Environment") or {}).get("Variables")) or {}, properties=props,
        )
        rc = props.get("ReservedConcurrentExecutions")
        fn.reserved_concurrency = int(self.try_evaluate(rc, where, 0)) if rc is not None else None
        dlq = (props.get("DeadLetterConfig") or {}).get("TargetArn")
        if dlq is not None:
            if self._is_queue(dlq, where):
                fn.on_failure, fn.on_failure_kind = dlq, "dlq"
            else:
                self.problem(f"{where}.DeadLetterConfig: only SQS dead-letter queues are wired locally")
        return fn

    def _is_queue(self, value: Any, where: str) -> bool:
        logical = referenced_logical_id(value)
        if logical in self.resources:
            return self.resources[logical].type == "AWS::SQS::Queue"
        return ":sqs:" in str(self.try_evaluate(value, where, ""))

    def _api(self, res: Resource) -> RestApi:
        where, props = res.logical_id, res.properties
        stages = [s for s in self.of_type("AWS::ApiGateway::Stage")
                  if referenced_logical_id(s.properties.get("RestApiId")) == where]
        body = props.get("Body")
        if body is None:
            self.problem(f"{where}: the API's definition is not in the template (BodyS3Location or no Body); "
                         "its routes are not wired")
        if not stages:
            return RestApi(where, "Prod", body, props)
        variables = self.try_evaluate(stages[0].properties.get("Variables") or {}, f"{stages[0].logical_id}", {})
        return RestApi(where, stages[0].name, body, props, {k: str(v) for k, v in variables.items()})

    def _target_function(self, value: Any) -> Function | None:
        logical = referenced_logical_id(value)
        if logical in self.functions:
            return self.functions[logical]
        if isinstance(value, str):
            for fn in self.functions.values():
                if value in (fn.arn, fn.name):
                    return fn
        return None

    def _event_source_mapping(self, logical_id: str, p: dict[str, Any]) -> None:
        fn = self._target_function(p.get("FunctionName"))
        if fn is None:
            self.problem(f"{logical_id}: the event source mapping's function is not in the template; not wired")
            return
        queue = self.queue_logical_id(p.get("EventSourceArn"), logical_id)
        if queue:
            concurrency = (p.get("ScalingConfig") or {}).get("MaximumConcurrency")
            fn.sqs_events.append(SqsEvent(
                logical_id, queue, int(self.try_evaluate(p.get("BatchSize", 10), logical_id, 10)),
                "ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
                _truthy(self.try_evaluate(p.get("Enabled", True), logical_id, True)),
                int(self.try_evaluate(concurrency, logical_id) or 2)))

    def _rule(self, logical_id: str, p: dict[str, Any]) -> None:
        enabled = str(p.get("State", "ENABLED")).upper() == "ENABLED"
        for target in p.get("Targets") or []:
            fn = self._target_function(target.get("Arn"))
            tid = str(target.get("Id", "target"))
            text_input = _json_text(self.try_evaluate(target.get("Input"), logical_id))
            if fn is not None:
                if "ScheduleExpression" in p:
                    expression = str(self.try_evaluate(p["ScheduleExpression"], logical_id, ""))
                    fn.schedules.append(ScheduleEvent(logical_id, "rule", expression, text_input, enabled))
                else:
                    fn.rule_events.append(RuleEvent(
                        tid, logical_id, self.bus_name(p.get("EventBusName", "default"), logical_id),
                        p.get("EventPattern") or {}, text_input, target.get("InputPath"),
                        target.get("InputTransformer"), enabled))
                continue
            queue = referenced_logical_id(target.get("Arn"))
            if queue in self.resources and self.resources[queue].type == "AWS::SQS::Queue":
                self.rule_targets.append((logical_id, tid, queue))  # moto delivers to SQS targets itself
            else:
                self.problem(f"{logical_id}: target {tid} is neither a function nor a queue of this template; "
                             "moto delivers only to queues, so it is not wired")

    def _scheduler(self, logical_id: str, p: dict[str, Any]) -> None:
        target = p.get("Target") or {}
        fn = self._target_function(target.get("Arn"))
        if fn is None:
            self.problem(f"{logical_id}: the schedule's target is not a function of this template; not wired")
            return
        fn.schedules.append(ScheduleEvent(logical_id, "scheduler",
                                          str(self.try_evaluate(p.get("ScheduleExpression"), logical_id, "")),
                                          _json_text(self.try_evaluate(target.get("Input"), logical_id)),
                                          str(p.get("State", "ENABLED")).upper() == "ENABLED"))

    def _invoke_config(self, logical_id: str, p: dict[str, Any]) -> None:
        fn = self._target_function(p.get("FunctionName"))
        if fn is None:
            self.problem(f"{logical_id}: EventInvokeConfig for a function not in the template; not wired")
            return
        if "MaximumRetryAttempts" in p:
            fn.maximum_retry_attempts = int(self.try_evaluate(p["MaximumRetryAttempts"], logical_id, 2))
        destination = (((p.get("DestinationConfig") or {}).get("OnFailure")) or {}).get("Destination")
        if destination is not None:
            if self._is_queue(destination, logical_id):
                fn.on_failure, fn.on_failure_kind = destination, "destination"
            else:
                self.problem(f"{logical_id}.DestinationConfig.OnFailure: only SQS destinations are wired locally")

    def _permission(self, logical_id: str, p: dict[str, Any]) -> None:
        """A permission names who invokes a function: one the local stack does not emulate is reported (S3
        notifications, SNS subscriptions, IoT rules ...)."""
        principal = str(self.try_evaluate(p.get("Principal"), logical_id, ""))
        if principal not in INVOKERS:
            target = referenced_logical_id(p.get("FunctionName")) or p.get("FunctionName")
            self.problem(f"{logical_id}: invocations of {target} by {principal} are not emulated by the local "
                         "stack (invoke it directly)")

    # -- queries -------------------------------------------------------------------------------------------------

    def function(self, name: str) -> Function:
        """A function by logical id, physical name or CodeUri folder name (as `sam local invoke` takes it)."""
        if name in self.functions:
            return self.functions[name]
        for fn in self.functions.values():
            if name in (fn.name, fn.code_uri.name, fn.handler.split(".")[0]):
                return fn
        known = ", ".join(sorted(self.functions)) or "none"
        raise KeyError(f"no function {name!r} in {self.path.name} (functions: {known})")

    def schedules(self) -> dict[str, tuple[Function, ScheduleEvent]]:
        return {s.name: (fn, s) for fn in self.functions.values() for s in fn.schedules}


def read_template(path: Path | str | None = None, parameters: dict[str, str] | None = None,
                  aws_endpoint: str = "http://127.0.0.1:5000") -> StackModel:
    """The template's model (the project's template.yaml if no path is given, see project.py); `parameters`
    are local values (conditions are decided with them)."""
    return StackModel(find_template(path), parameters, aws_endpoint)


def declared_parameters(path: Path) -> dict[str, Any]:
    """The template's Parameters, read without translating it (to choose the local values first)."""
    from samtranslator.yaml_helper import yaml_parse

    document = yaml_parse(Path(path).read_text(encoding="utf-8"))
    return dict((document.get("Parameters") or {}) if isinstance(document, dict) else {})


# -- the translation ------------------------------------------------------------------------------------------------


def translate(path: Path, parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation that `sam deploy` would deploy for the template, translated offline (a copy)."""
    stat = path.stat()
    key = json.dumps(sorted((parameters or {}).items()))
    return copy.deepcopy(_translate(str(path), stat.st_mtime_ns, stat.st_size, key))


@functools.lru_cache(maxsize=8)
def _translate(path: str, mtime_ns: int, size: int, parameters: str) -> dict[str, Any]:
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.yaml_helper import yaml_parse

    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # feature-toggle notices, one per API
    base = Path(path).parent
    document = yaml_parse(Path(path).read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise TemplateInvalid(f"{path} is not a template")
    _point_code_at_local_folders(document)
    _inline_local_definitions(document, base)
    if "Transform" not in document:  # plain CloudFormation: nothing for SAM to do
        return document
    # A Session with the region only: SAM asks it for the region and partition, and never calls AWS with it.
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    try:
        return translator.translate(document, parameter_values=dict(json.loads(parameters)),
                                    get_managed_policy_map=dict)  # IAM is not emulated: no managed-policy lookup
    except InvalidDocumentException as exc:
        causes = "; ".join(str(getattr(cause, "message", cause)) for cause in exc.causes)
        raise TemplateInvalid(f"{Path(path).name} is not a valid SAM template: {causes}") from None


def _point_code_at_local_folders(document: dict[str, Any]) -> None:
    """CodeUri/ContentUri folders (and CloudFormation Code/Content given as folders, which `sam package`
    accepts) become s3://local-code/<folder>, as `sam validate` puts a placeholder there; the model reads the
    folder back from the translated Code.S3Key."""
    placeholder = f"s3://{LOCAL_CODE_BUCKET}/"
    function_globals = (document.get("Globals") or {}).get("Function") or {}
    if isinstance(function_globals.get("CodeUri"), str):
        function_globals["CodeUri"] = placeholder + urllib.parse.quote(function_globals["CodeUri"])
    for res in (document.get("Resources") or {}).values():
        props = res.get("Properties") if isinstance(res, dict) else None
        if not isinstance(props, dict):
            continue
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = placeholder + urllib.parse.quote(props[key])
        for key in ("Code", "Content"):
            if isinstance(props.get(key), str) and res.get("Type", "").startswith("AWS::Lambda::"):
                props[key] = {"S3Bucket": LOCAL_CODE_BUCKET, "S3Key": urllib.parse.quote(props[key])}


def _inline_local_definitions(document: dict[str, Any], base: Path) -> None:
    """An API's DefinitionUri or AWS::Include file that is local is read in place (what `sam package` uploads)."""
    from samtranslator.yaml_helper import yaml_parse

    for res in (document.get("Resources") or {}).values():
        props = res.get("Properties") if isinstance(res, dict) else None
        if not isinstance(props, dict) or res.get("Type") != "AWS::Serverless::Api":
            continue
        uri = props.get("DefinitionUri")
        if isinstance(uri, str) and (base / uri).is_file():
            props["DefinitionBody"] = yaml_parse((base / uri).read_text(encoding="utf-8"))
            del props["DefinitionUri"]
        include = (props.get("DefinitionBody") or {}).get("Fn::Transform") \
            if isinstance(props.get("DefinitionBody"), dict) else None
        location = ((include or {}).get("Parameters") or {}).get("Location")
        if (include or {}).get("Name") == "AWS::Include" and isinstance(location, str) and (base / location).is_file():
            props["DefinitionBody"] = yaml_parse((base / location).read_text(encoding="utf-8"))


def _local_folder(code: Any) -> str | None:
    """The local folder a translated Code/Content points at, or None when it is not local."""
    if isinstance(code, dict) and code.get("S3Bucket") == LOCAL_CODE_BUCKET and isinstance(code.get("S3Key"), str):
        return urllib.parse.unquote(code["S3Key"])
    return None


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _json_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)
