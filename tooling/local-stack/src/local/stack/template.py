"""template.yaml as the local stack sees it: functions, their events, and the resources they use.

`read_template()` parses the SAM template (Globals merged, the way SAM merges them) into a `StackModel`.
Values that depend on the running stack (queue URLs, secret ARNs, parameter values such as the ERP's URL)
are evaluated on demand against `LocalValues`, which the stack fills in as it creates things; offline (no
stack running) they are predicted from the same naming rules, which is what the reader's tests check.

Everything the template declares is either wired (functions, APIs, queues, tables, buses, rules,
schedules, secrets), deliberately not needed locally (log groups, alarms, IAM: listed in NOT_EMULATED), or
reported in `StackModel.problems` with its logical id: nothing is ignored silently.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cfn import ACCOUNT_ID, Evaluator, Unsupported, intrinsic, load_yaml, referenced_logical_id

ROOT = Path(__file__).resolve().parents[5]
DEFAULT_TEMPLATE = ROOT / "template.yaml"
STACK_NAME = "salesforce-integration"  # samconfig's default stack: names in sample events match local ones
REGION = "eu-west-1"
IMPLICIT_API = "ServerlessRestApi"

# Resource types the stack creates in moto or emulates itself.
WIRED = {
    "AWS::Serverless::Function", "AWS::Serverless::Api", "AWS::Serverless::LayerVersion",
    "AWS::Lambda::LayerVersion", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventInvokeConfig",
    "AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable", "AWS::Events::EventBus",
    "AWS::Events::Rule", "AWS::SecretsManager::Secret", "AWS::Scheduler::Schedule",
    "AWS::Scheduler::ScheduleGroup", "AWS::SNS::Topic", "AWS::SSM::Parameter", "AWS::S3::Bucket",
}
# Resource types with no local effect: what they do (permissions, retention, alarms) is not emulated.
NOT_EMULATED = {
    "AWS::Logs::LogGroup", "AWS::Logs::MetricFilter", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm",
    "AWS::CloudWatch::Dashboard", "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy",
    "AWS::Lambda::Permission", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::SNS::Subscription",
    "AWS::Events::EventBusPolicy", "AWS::KMS::Key", "AWS::KMS::Alias", "AWS::ApiGateway::GatewayResponse",
    "AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlanKey",
    "AWS::ApiGateway::Account", "AWS::SecretsManager::RotationSchedule", "AWS::Lambda::Version",
    "AWS::Lambda::Alias", "AWS::Serverless::Application",
}


# -- the model ----------------------------------------------------------------------------------------------


@dataclass
class ApiEvent:
    name: str
    path: str
    method: str  # upper case, or ANY
    api: str  # logical id of the AWS::Serverless::Api, or ServerlessRestApi
    auth: dict[str, Any]
    timeout_ms: int = 29_000


@dataclass
class SqsEvent:
    name: str
    queue: str  # logical id
    batch_size: int = 10
    report_batch_item_failures: bool = False
    enabled: bool = True
    max_concurrency: int = 2


@dataclass
class RuleEvent:
    """An EventBridge rule whose target is the function (SAM EventBridgeRule/CloudWatchEvent, or AWS::Events::Rule)."""

    name: str
    rule: str  # logical id of the rule (SAM's generated one for events: <Function><Event>)
    bus: str  # physical bus name ("default" or the bus's name)
    pattern: dict[str, Any]
    input: str | None = None
    input_path: str | None = None
    input_transformer: dict[str, Any] | None = None
    enabled: bool = True


@dataclass
class ScheduleEvent:
    """A schedule that invokes the function: SAM Schedule/ScheduleV2, AWS::Scheduler::Schedule, or a rule's."""

    name: str  # the logical id to fire it by: <Function><Event> for SAM events, the resource's own otherwise
    kind: str  # "rule" (an EventBridge scheduled rule) or "scheduler" (EventBridge Scheduler)
    expression: str
    input: str | None = None
    enabled: bool = True
    maximum_retry_attempts: int | None = None


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
    api_events: list[ApiEvent] = field(default_factory=list)
    sqs_events: list[SqsEvent] = field(default_factory=list)
    rule_events: list[RuleEvent] = field(default_factory=list)
    schedules: list[ScheduleEvent] = field(default_factory=list)
    maximum_retry_attempts: int = 2  # asynchronous invocations (EventBridge, schedules)
    on_failure: Any = None  # raw ARN value: the DeadLetterQueue or the OnFailure destination (SQS)
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
    auth: dict[str, Any]
    definition: dict[str, Any] | None  # DefinitionBody (OpenAPI/Swagger), raw
    properties: dict[str, Any] = field(default_factory=dict)

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

    def _generated(self, logical_id: str) -> tuple[str, str] | None:
        """(name, ARN) of a resource SAM generates: <Function><Event> rules and <Function>Role roles."""
        for fn in self.model.functions.values():
            for event in fn.rule_events:
                if event.rule == logical_id and logical_id not in self.model.resources:
                    name = f"{STACK_NAME}-{logical_id}"
                    prefix = "" if event.bus == "default" else f"{event.bus}/"
                    return name, f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{prefix}{name}"
            if logical_id == f"{fn.logical_id}Role":
                name = f"{STACK_NAME}-{logical_id}"
                return name, f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
        return None

    def ref(self, logical_id: str) -> Any:
        m = self.model
        if logical_id in m.functions:
            return m.functions[logical_id].name
        if logical_id in m.apis:
            return m.apis[logical_id].id
        generated = self._generated(logical_id)
        if generated:
            return generated[0]
        res = m.resources[logical_id]
        if logical_id in self.actual:
            return self.actual[logical_id]
        t = res.type
        if t == "AWS::SQS::Queue":
            return f"{self.aws_endpoint}/{ACCOUNT_ID}/{res.name}"
        if t in ("AWS::SecretsManager::Secret", "AWS::SNS::Topic", "AWS::Serverless::LayerVersion",
                 "AWS::Lambda::LayerVersion"):
            return self.getatt(logical_id, "Arn")
        return res.name

    def getatt(self, logical_id: str, attribute: str) -> Any:
        m = self.model
        if logical_id in m.functions:
            if attribute == "Arn":
                return m.functions[logical_id].arn
            raise KeyError(attribute)
        if logical_id in m.apis:
            if attribute == "RootResourceId":
                return "root"
            raise KeyError(attribute)
        generated = self._generated(logical_id)
        if generated and attribute == "Arn":
            return generated[1]
        res = m.resources[logical_id]
        t, name = res.type, res.name
        service = {"AWS::SQS::Queue": "sqs", "AWS::SNS::Topic": "sns"}.get(t)
        if service and attribute in ("Arn", "TopicArn"):
            return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{name}"
        if t == "AWS::SQS::Queue":
            return {"QueueName": name, "QueueUrl": self.ref(logical_id)}[attribute]
        if t in ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"):
            arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"
            return {"Arn": arn, "StreamArn": f"{arn}/stream/local"}[attribute]
        if t == "AWS::Events::EventBus":
            return {"Arn": f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{name}", "Name": name}[attribute]
        if t == "AWS::Events::Rule" and attribute == "Arn":
            bus = res.properties.get("EventBusName", "default")
            prefix = "" if bus == "default" or not isinstance(bus, str) else f"{bus}/"
            return f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{prefix}{name}"
        if t == "AWS::SecretsManager::Secret" and attribute in ("Arn", "Id"):
            return self.actual.get(logical_id, f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{name}-local0")
        if t in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{name}:1"
        if t == "AWS::Scheduler::Schedule" and attribute == "Arn":
            return f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/default/{name}"
        if t == "AWS::SSM::Parameter":
            return {"Value": res.properties.get("Value"), "Type": res.properties.get("Type", "String")}[attribute]
        if t == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{name}"
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
    """The parsed template; see the module docstring."""

    def __init__(self, path: Path = DEFAULT_TEMPLATE, parameters: dict[str, str] | None = None,
                 aws_endpoint: str = "http://127.0.0.1:5000"):
        self.path = Path(path).resolve()
        self.base_dir = self.path.parent
        self.doc: dict[str, Any] = load_yaml(self.path) or {}
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
        self.problem(f"{where}: the queue {value!r} is not declared in the template, so it is not wired locally")
        return None

    # -- parsing ---------------------------------------------------------------------------------------------

    def _parse(self) -> None:
        raw = self.doc.get("Resources") or {}
        globals_ = self.doc.get("Globals") or {}
        for logical_id, res in raw.items():
            rtype = res.get("Type", "")
            if "Condition" in res:
                try:
                    if not self.values.evaluator().condition(res["Condition"]):
                        continue
                except Unsupported as exc:
                    self.problem(f"{logical_id}: {exc}")
            props = res.get("Properties") or {}
            self.resources[logical_id] = Resource(logical_id, rtype, props, self._physical_name(logical_id, rtype,
                                                                                                 props))
            if rtype not in WIRED and rtype not in NOT_EMULATED:
                self.problem(f"{logical_id}: resource type {rtype} is not emulated by the local stack")
        self._implicit_api_auth = copy.deepcopy((globals_.get("Api") or {}).get("Auth") or {})
        for logical_id, res in self.resources.items():
            if res.type == "AWS::Serverless::Api":
                self.apis[logical_id] = self._api(logical_id, _merge(globals_.get("Api") or {}, res.properties))
        for logical_id, res in self.resources.items():
            if res.type == "AWS::Serverless::Function":
                self.functions[logical_id] = self._function(logical_id, _merge(globals_.get("Function") or {},
                                                                               res.properties))
        for logical_id, res in self.resources.items():
            if res.type == "AWS::Lambda::EventSourceMapping":
                self._event_source_mapping(logical_id, res.properties)
            elif res.type == "AWS::Events::Rule":
                self._rule(logical_id, res.properties)
            elif res.type == "AWS::Scheduler::Schedule":
                self._scheduler(logical_id, res.properties)
            elif res.type == "AWS::Lambda::EventInvokeConfig":
                self._invoke_config(logical_id, res.properties)
        if any(e.api == IMPLICIT_API for f in self.functions.values() for e in f.api_events):
            self.apis[IMPLICIT_API] = self._api(IMPLICIT_API, _merge(globals_.get("Api") or {}, {"StageName": "Prod"}))

    def _physical_name(self, logical_id: str, rtype: str, props: dict[str, Any]) -> str:
        key = {"AWS::SQS::Queue": "QueueName", "AWS::DynamoDB::Table": "TableName",
               "AWS::Serverless::SimpleTable": "TableName", "AWS::Events::EventBus": "Name",
               "AWS::Events::Rule": "Name", "AWS::SecretsManager::Secret": "Name", "AWS::SNS::Topic": "TopicName",
               "AWS::Serverless::Function": "FunctionName", "AWS::Scheduler::Schedule": "Name",
               "AWS::SSM::Parameter": "Name", "AWS::S3::Bucket": "BucketName", "AWS::Logs::LogGroup": "LogGroupName",
               "AWS::Serverless::LayerVersion": "LayerName", "AWS::Lambda::LayerVersion": "LayerName",
               "AWS::Scheduler::ScheduleGroup": "Name"}.get(rtype)
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

    def _api(self, logical_id: str, props: dict[str, Any]) -> RestApi:
        stage = self.try_evaluate(props.get("StageName", "Prod"), f"{logical_id}.StageName", "Prod")
        definition = props.get("DefinitionBody")
        if definition is not None and intrinsic(definition) and intrinsic(definition)[0] == "Fn::Transform":
            definition = self._include(logical_id, intrinsic(definition)[1])
        if definition is None and "DefinitionUri" in props:
            uri = props["DefinitionUri"]
            if isinstance(uri, str) and (self.base_dir / uri).is_file():
                definition = load_yaml(self.base_dir / uri)
            else:
                self.problem(f"{logical_id}: DefinitionUri {uri!r} is not a local file; its routes are not wired")
        auth = props.get("Auth") or {}
        for key in ("Authorizers", "ResourcePolicy", "UsagePlan"):
            if key == "Authorizers" and auth.get(key):
                names = [n for n in auth[key] if n != "AWS_IAM"]
                if names:
                    self.problem(f"{logical_id}: Lambda/Cognito authorizers {names} are not enforced locally")
            if key == "ResourcePolicy" and auth.get(key):
                self.problem(f"{logical_id}: the API's resource policy is not enforced locally")
        return RestApi(logical_id, str(stage), auth, definition, props)

    def _include(self, logical_id: str, transform: Any) -> dict[str, Any] | None:
        params = transform.get("Parameters", {}) if isinstance(transform, dict) else {}
        location = params.get("Location")
        local = isinstance(location, str) and (self.base_dir / location).is_file()
        if transform.get("Name") == "AWS::Include" and local:
            return load_yaml(self.base_dir / location)
        self.problem(f"{logical_id}: DefinitionBody transform {transform!r} is not a local AWS::Include; not wired")
        return None

    def _function(self, logical_id: str, props: dict[str, Any]) -> Function:
        where = logical_id
        code_uri = props.get("CodeUri")
        if not isinstance(code_uri, str):
            self.problem(f"{where}: CodeUri {code_uri!r} is not a local folder; the function cannot run locally")
            code_uri = "."
        if props.get("PackageType") == "Image" or props.get("InlineCode"):
            self.problem(f"{where}: image and inline-code functions are not supported locally")
        runtime = str(props.get("Runtime", ""))
        if runtime and not runtime.startswith("python"):
            self.problem(f"{where}: runtime {runtime} is not Python; the local stack runs Python functions only")
        layers = []
        for i, layer in enumerate(props.get("Layers") or []):
            target = referenced_logical_id(layer)
            res = self.resources.get(target or "")
            uri = res.properties.get("ContentUri", res.properties.get("Content")) if res else None
            if isinstance(uri, str):
                layers.append((self.base_dir / uri).resolve())
            else:
                self.problem(f"{where}.Layers[{i}]: {layer!r} is not a layer built from a local folder; not loaded")
        env = ((props.get("Environment") or {}).get("Variables")) or {}
        fn = Function(
            logical_id=logical_id, name=self.resources[logical_id].name, code_uri=(self.base_dir / code_uri).resolve(),
            handler=str(props.get("Handler", "")), runtime=runtime,
            timeout=int(self.try_evaluate(props.get("Timeout", 3), f"{where}.Timeout", 3)),
            memory=int(self.try_evaluate(props.get("MemorySize", 128), f"{where}.MemorySize", 128)),
            layers=layers, environment=env, properties=props,
        )
        rc = props.get("ReservedConcurrentExecutions")
        fn.reserved_concurrency = int(self.try_evaluate(rc, where, 0)) if rc is not None else None
        dlq = props.get("DeadLetterQueue")
        if dlq:
            if dlq.get("Type") == "SQS":
                fn.on_failure, fn.on_failure_kind = dlq.get("TargetArn"), "dlq"
            else:
                self.problem(f"{where}.DeadLetterQueue: only SQS dead-letter queues are wired locally")
        invoke_config = props.get("EventInvokeConfig") or {}
        self._apply_invoke_config(fn, invoke_config, f"{where}.EventInvokeConfig")
        for event_name, event in (props.get("Events") or {}).items():
            self._event(fn, event_name, event.get("Type", ""), event.get("Properties") or {})
        return fn

    def _apply_invoke_config(self, fn: Function, config: dict[str, Any], where: str) -> None:
        if "MaximumRetryAttempts" in config:
            fn.maximum_retry_attempts = int(self.try_evaluate(config["MaximumRetryAttempts"], where, 2))
        on_failure = ((config.get("DestinationConfig") or {}).get("OnFailure")) or {}
        if on_failure:
            if on_failure.get("Type", "SQS") == "SQS" or ":sqs:" in str(on_failure.get("Destination")):
                fn.on_failure, fn.on_failure_kind = on_failure.get("Destination"), "destination"
            else:
                self.problem(f"{where}.DestinationConfig.OnFailure: only SQS destinations are wired locally")

    def _event(self, fn: Function, name: str, etype: str, p: dict[str, Any]) -> None:
        where = f"{fn.logical_id}.Events.{name}"
        if etype == "Api":
            api = referenced_logical_id(p.get("RestApiId")) if "RestApiId" in p else IMPLICIT_API
            if api != IMPLICIT_API and api not in self.apis:
                self.problem(f"{where}: RestApiId {p.get('RestApiId')!r} is not an AWS::Serverless::Api here")
                return
            method = str(p.get("Method", "any")).upper()
            fn.api_events.append(ApiEvent(name, str(self.try_evaluate(p.get("Path"), where, "/")),
                                          "ANY" if method in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD") else method,
                                          str(api), p.get("Auth") or {},
                                          int(self.try_evaluate(p.get("TimeoutInMillis", 29_000), where, 29_000))))
        elif etype == "SQS":
            queue = self.queue_logical_id(p.get("Queue"), where)
            if queue:
                fn.sqs_events.append(SqsEvent(
                    name, queue, int(self.try_evaluate(p.get("BatchSize", 10), where, 10)),
                    "ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
                    _truthy(self.try_evaluate(p.get("Enabled", True), where, True)),
                    int(self.try_evaluate((p.get("ScalingConfig") or {}).get("MaximumConcurrency"), where) or 2)))
        elif etype in ("EventBridgeRule", "CloudWatchEvent"):
            bus = self._bus_name(p.get("EventBusName", "default"), where)
            if p.get("DeadLetterConfig") or p.get("RetryPolicy"):
                pass  # EventBridge's delivery retries: delivery to a local function never fails (docs)
            fn.rule_events.append(RuleEvent(
                name, f"{fn.logical_id}{name}", bus, p.get("Pattern") or {}, _json_text(p.get("Input")),
                p.get("InputPath"), p.get("InputTransformer"),
                str(p.get("State", "ENABLED")).upper() == "ENABLED" and _truthy(p.get("Enabled", True))))
        elif etype in ("Schedule", "ScheduleV2"):
            expression = p.get("Schedule") if etype == "Schedule" else p.get("ScheduleExpression")
            retry = (p.get("RetryPolicy") or {}).get("MaximumRetryAttempts")
            enabled = _truthy(p.get("Enabled", True)) and str(p.get("State", "ENABLED")).upper() == "ENABLED"
            fn.schedules.append(ScheduleEvent(
                f"{fn.logical_id}{name}", "rule" if etype == "Schedule" else "scheduler",
                str(self.try_evaluate(expression, where, "")), _json_text(self.try_evaluate(p.get("Input"), where)),
                enabled, int(retry) if retry is not None else None))
        else:
            self.problem(f"{where}: event type {etype} is not emulated by the local stack (invoke it directly)")

    def _bus_name(self, value: Any, where: str) -> str:
        logical = referenced_logical_id(value)
        if logical and logical in self.resources:
            return self.resources[logical].name
        if isinstance(value, str):
            return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value
        return str(self.try_evaluate(value, where, "default"))

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
        source = p.get("EventSourceArn")
        if fn is None:
            self.problem(f"{logical_id}: the event source mapping's function is not in the template; not wired")
            return
        queue = self.queue_logical_id(source, logical_id)
        if queue:
            fn.sqs_events.append(SqsEvent(logical_id, queue, int(p.get("BatchSize", 10)),
                                          "ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
                                          _truthy(p.get("Enabled", True))))

    def _rule(self, logical_id: str, p: dict[str, Any]) -> None:
        res = self.resources[logical_id]
        enabled = str(p.get("State", "ENABLED")).upper() == "ENABLED"
        for target in p.get("Targets") or []:
            fn = self._target_function(target.get("Arn"))
            tid = str(target.get("Id", "target"))
            if fn is not None:
                if "ScheduleExpression" in p:
                    fn.schedules.append(ScheduleEvent(logical_id, "rule", str(p["ScheduleExpression"]),
                                                      _json_text(target.get("Input")), enabled))
                else:
                    bus = self._bus_name(p.get("EventBusName", "default"), logical_id)
                    fn.rule_events.append(RuleEvent(tid, logical_id, bus, p.get("EventPattern") or {},
                                                    _json_text(target.get("Input")), target.get("InputPath"),
                                                    target.get("InputTransformer"), enabled))
                continue
            queue = referenced_logical_id(target.get("Arn"))
            if queue in self.resources and self.resources[queue].type == "AWS::SQS::Queue":
                self.rule_targets.append((logical_id, tid, queue))  # moto delivers to SQS targets itself
            else:
                self.problem(f"{logical_id}: target {tid} is neither a function nor a queue of this template; "
                             "moto delivers only to queues, so it is not wired")
        del res

    def _scheduler(self, logical_id: str, p: dict[str, Any]) -> None:
        target = p.get("Target") or {}
        fn = self._target_function(target.get("Arn"))
        if fn is None:
            self.problem(f"{logical_id}: the schedule's target is not a function of this template; not wired")
            return
        retry = (target.get("RetryPolicy") or {}).get("MaximumRetryAttempts")
        fn.schedules.append(ScheduleEvent(logical_id, "scheduler", str(self.try_evaluate(p.get("ScheduleExpression"),
                                                                                        logical_id, "")),
                                          _json_text(self.try_evaluate(target.get("Input"), logical_id)),
                                          str(p.get("State", "ENABLED")).upper() == "ENABLED",
                                          int(retry) if retry is not None else None))

    def _invoke_config(self, logical_id: str, p: dict[str, Any]) -> None:
        fn = self._target_function(p.get("FunctionName"))
        if fn is None:
            self.problem(f"{logical_id}: EventInvokeConfig for a function not in the template; not wired")
            return
        self._apply_invoke_config(fn, p, logical_id)

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


def read_template(path: Path | str = DEFAULT_TEMPLATE, parameters: dict[str, str] | None = None,
                  aws_endpoint: str = "http://127.0.0.1:5000") -> StackModel:
    """The template's model; `parameters` are local values (conditions are decided with them)."""
    return StackModel(Path(path), parameters, aws_endpoint)


# -- helpers ------------------------------------------------------------------------------------------------------


def _merge(globals_: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """SAM's Globals merge: maps merge recursively (the resource wins), lists are concatenated, scalars replaced."""
    out = copy.deepcopy(globals_)
    for key, value in own.items():
        if key in out and isinstance(out[key], dict) and isinstance(value, dict) and not intrinsic(value):
            out[key] = _merge(out[key], value)
        elif key in out and isinstance(out[key], list) and isinstance(value, list):
            out[key] = out[key] + value
        else:
            out[key] = copy.deepcopy(value)
    return out


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value)


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value)
    return "" if value is None else str(value)


def api_path_regex(path: str) -> re.Pattern[str]:
    """/products/{sku}/availability -> a regex with named groups; {proxy+} matches the rest of the path."""
    parts = []
    for segment in path.strip("/").split("/"):
        m = re.fullmatch(r"\{([A-Za-z0-9_.-]+?)(\+)?\}", segment)
        if m:
            parts.append(f"(?P<{_group(m.group(1))}>.+)" if m.group(2) else f"(?P<{_group(m.group(1))}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "/?$") if parts != [""] else re.compile("^/$")


def _group(name: str) -> str:
    return "p_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
