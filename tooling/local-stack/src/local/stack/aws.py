"""The AWS side: moto in server mode, and the template's resources created in it.

Resources are created here rather than by deploying the translated template to moto's CloudFormation: that
would also create the functions and APIs (from S3 code that does not exist locally) and name resources its own
way, while the stack needs the names template.py predicts offline and runs functions and APIs itself.

Queues (with their redrive policies), DynamoDB tables (keys, indexes, TTL), event buses, rules (with their
SQS targets, which moto delivers to, and a "tap" queue per function target, which the stack polls because
moto does not invoke Lambda targets), secrets (given or generated values), SNS topics, SSM parameters and
S3 buckets. Functions reach it through AWS_ENDPOINT_URL, which boto3 honours.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from .template import REGION, StackModel

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
TAP_PREFIX = "local-tap-"
_QUEUE_ATTRIBUTES = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
                     "ReceiveMessageWaitTimeSeconds", "FifoQueue", "ContentBasedDeduplication",
                     "DeduplicationScope", "FifoThroughputLimit")


def moto_bus_name(name: str) -> str:
    """moto keys buses by the part after the last "/" (it reads names as ARNs), so partner buses
    (aws.partner/salesforce.com/<org>/<channel>) are created under that part; moto finds them by full name."""
    return name.rsplit("/", 1)[-1]


@dataclass
class Tap:
    """A queue the stack added as a rule's extra target, standing in for a function target."""

    rule: str  # the rule's logical id
    function: str  # the function's logical id
    queue_url: str
    queue_arn: str


class MotoServer:
    """moto's ThreadedMotoServer on loopback; one per process (moto's state is per process)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.endpoint = ""
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def start(self) -> MotoServer:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per AWS call otherwise
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        import requests

        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10)  # a clean account, whatever ran before
        return self

    def stop(self) -> None:
        self._server.stop()

    def client(self, service: str) -> Any:
        """A boto3 client for this server (cached: clients are thread-safe, and building one takes ~0.3 s)."""
        with self._lock:
            if service not in self._clients:
                session = boto3.session.Session(aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                                aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                                aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"], region_name=REGION)
                self._clients[service] = session.client(
                    service, endpoint_url=self.endpoint,
                    config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30,
                                  max_pool_connections=50))
            return self._clients[service]

    def create_secret(self, name: str, value: str) -> str:
        """The secret's ARN; an existing secret of that name gets the new value."""
        sm = self.client("secretsmanager")
        try:
            return sm.create_secret(Name=name, SecretString=value)["ARN"]
        except sm.exceptions.ResourceExistsException:
            sm.put_secret_value(SecretId=name, SecretString=value)
            return sm.describe_secret(SecretId=name)["ARN"]

    def environment(self) -> dict[str, str]:
        """What a function process needs to talk to this server instead of AWS."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION}


class Provisioner:
    """Creates the model's resources in moto; records the values only known afterwards (secret ARNs)."""

    def __init__(self, model: StackModel, moto: MotoServer):
        self.model = model
        self.moto = moto
        self.taps: list[Tap] = []
        self.generated_secrets: dict[str, str] = {}  # logical id -> value, for the demo and tests

    def create_all(self) -> None:
        self.model.values.aws_endpoint = self.moto.endpoint
        self._secrets()
        self._queues()
        self._tables()
        self._buses_and_rules()
        self._others()

    def ev(self, value: Any, where: str) -> Any:
        return self.model.evaluate(value, where)

    # -- secrets ---------------------------------------------------------------------------------------------------

    def _secrets(self) -> None:
        for res in self.model.of_type("AWS::SecretsManager::Secret"):
            p = res.properties
            if "SecretString" in p:
                value = str(self.ev(p["SecretString"], f"{res.logical_id}.SecretString"))
            else:
                value = generate_secret(self.moto.client("secretsmanager"),
                                        self.ev(p.get("GenerateSecretString") or {}, res.logical_id))
                self.generated_secrets[res.logical_id] = value
            self.model.values.actual[res.logical_id] = self.moto.create_secret(res.name, value)

    # -- queues ------------------------------------------------------------------------------------------------

    def _queues(self) -> None:
        sqs = self.moto.client("sqs")
        queues = self.model.of_type("AWS::SQS::Queue")
        # Dead-letter queues first: a redrive policy must name an existing queue.
        queues.sort(key=lambda r: "RedrivePolicy" in r.properties)
        for res in queues:
            p = self.ev(res.properties, res.logical_id)
            attributes = {k: _attr(p[k]) for k in _QUEUE_ATTRIBUTES if k in p}
            for key in ("RedrivePolicy", "RedriveAllowPolicy"):
                if key in p:
                    attributes[key] = json.dumps(p[key]) if isinstance(p[key], dict) else str(p[key])
            sqs.create_queue(QueueName=res.name, Attributes=attributes)

    # -- tables ------------------------------------------------------------------------------------------------

    def _tables(self) -> None:
        ddb = self.moto.client("dynamodb")
        for res in self.model.of_type("AWS::DynamoDB::Table"):  # SAM's SimpleTable is one too, once translated
            p = self.ev(res.properties, res.logical_id)
            kwargs: dict[str, Any] = {"TableName": res.name, "AttributeDefinitions": p["AttributeDefinitions"],
                                      "KeySchema": p["KeySchema"], "BillingMode": "PAY_PER_REQUEST"}
            for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if key in p:
                    kwargs[key] = [{k: v for k, v in index.items() if k != "ProvisionedThroughput"}
                                   for index in p[key]]
            if "StreamSpecification" in p:
                kwargs["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
            ddb.create_table(**kwargs)
            ttl = p.get("TimeToLiveSpecification")
            if ttl and str(ttl.get("Enabled")).lower() == "true":
                ddb.update_time_to_live(TableName=res.name, TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"], "Enabled": True})

    # -- EventBridge ---------------------------------------------------------------------------------------------

    def _buses_and_rules(self) -> None:
        events, sqs = self.moto.client("events"), self.moto.client("sqs")
        buses = {"default"} | {res.name for res in self.model.of_type("AWS::Events::EventBus")}
        buses |= {e.bus for fn in self.model.functions.values() for e in fn.rule_events}
        buses |= {self._rule_bus(rule) for rule, _, _ in self.model.rule_targets}
        for bus in sorted(buses - {"default"}):
            with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
                events.create_event_bus(Name=moto_bus_name(bus))
        # Rules with queue targets (moto delivers to SQS) ...
        for rule_id, target_id, queue_id in self.model.rule_targets:
            res = self.model.resources[rule_id]
            p = self.ev(res.properties, rule_id)
            self._put_rule(res.name, self._rule_bus(rule_id), p.get("EventPattern"), p.get("State", "ENABLED"))
            target = next(t for t in p["Targets"] if str(t.get("Id")) == target_id)
            entry = {k: target[k] for k in ("Id", "Arn", "Input", "InputPath", "InputTransformer", "SqsParameters")
                     if k in target}
            del queue_id
            events.put_targets(Rule=res.name, EventBusName=self._rule_bus(rule_id), Targets=[entry])
        # ... and rules with function targets, which get a tap queue instead.
        for fn in self.model.functions.values():
            for event in fn.rule_events:
                name = self.model.resources[event.rule].name
                pattern = self.ev(event.pattern, f"{fn.logical_id}.{event.name}.Pattern")
                self._put_rule(name, event.bus, pattern, "ENABLED" if event.enabled else "DISABLED")
                tap_name = f"{TAP_PREFIX}{fn.logical_id}-{event.rule}"[:80]
                url = sqs.create_queue(QueueName=tap_name)["QueueUrl"]
                arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                target: dict[str, Any] = {"Id": f"local-tap-{event.name}"[:64], "Arn": arn}
                if event.input is not None:
                    target["Input"] = event.input
                if event.input_path:
                    target["InputPath"] = event.input_path
                if event.input_transformer:
                    target["InputTransformer"] = self.ev(event.input_transformer, fn.logical_id)
                events.put_targets(Rule=name, EventBusName=event.bus, Targets=[target])
                self.taps.append(Tap(event.rule, fn.logical_id, url, arn))

    def _rule_bus(self, rule_id: str) -> str:
        bus = self.model.resources[rule_id].properties.get("EventBusName", "default")
        return self.model.bus_name(bus, rule_id)

    def _put_rule(self, name: str, bus: str, pattern: Any, state: str) -> None:
        pattern_text = pattern if isinstance(pattern, str) else json.dumps(pattern or {})
        self.moto.client("events").put_rule(Name=name, EventBusName=bus, EventPattern=pattern_text, State=state)

    # -- the rest ----------------------------------------------------------------------------------------------

    def _others(self) -> None:
        for res in self.model.of_type("AWS::SNS::Topic"):
            self.moto.client("sns").create_topic(Name=res.name)
        for res in self.model.of_type("AWS::SSM::Parameter"):
            p = self.ev(res.properties, res.logical_id)
            self.moto.client("ssm").put_parameter(Name=res.name, Value=str(p.get("Value", "")),
                                                  Type=p.get("Type", "String"), Overwrite=True)
        for res in self.model.of_type("AWS::S3::Bucket"):
            self.moto.client("s3").create_bucket(Bucket=res.name,
                                                 CreateBucketConfiguration={"LocationConstraint": REGION})


def generate_secret(secretsmanager: Any, spec: dict[str, Any]) -> str:
    """A value as GenerateSecretString describes it: Secrets Manager's GetRandomPassword (moto's), optionally
    inside the JSON template."""
    options = ("PasswordLength", "ExcludeCharacters", "ExcludeNumbers", "ExcludePunctuation", "ExcludeUppercase",
               "ExcludeLowercase", "IncludeSpace", "RequireEachIncludedType")
    kwargs = {key: (int(spec[key]) if key == "PasswordLength" else
                    spec[key] if key == "ExcludeCharacters" else _truthy(spec[key]))
              for key in options if key in spec}
    value = secretsmanager.get_random_password(**kwargs)["RandomPassword"]
    if "GenerateStringKey" in spec:
        template = json.loads(spec.get("SecretStringTemplate") or "{}")
        template[spec["GenerateStringKey"]] = value
        return json.dumps(template)
    return str(value)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
