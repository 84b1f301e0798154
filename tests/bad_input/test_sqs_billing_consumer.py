"""Pattern 2's billing consumer fed bad SQS messages, with moto SQS/DynamoDB, the billing stand-in and the
Salesforce emulator.

The documented contract (docs/fire-and-forget.md): a malformed message goes to the dead-letter queue after
one try with a ``failure_reason`` attribute, is reported as processed (so SQS does not retry it), and neither
billing nor Salesforce hears of it. The contracts API's request model (template.yaml) lets through bodies the
consumer must still refuse (ids failing their checksum, impossible dates): those are generated from that very
model, as the API Gateway -> SQS integration would queue them.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import schemathesis
from billing_consumer import consumer as application
from billing_consumer import handler as consumer
from billing_consumer.models import to_18
from hypothesis import assume, event, example, given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from salesforce_access import get_access
from salesforce_access.observability import logger
from stand_ins.billing import BillingServer

from .conftest import FEW, FUZZ, OVERSIZED, deeply_nested, salesforce_writes, truncations

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = "8005e000001AbCdAAK"
ACCOUNT = "0015e00000ZkM3hAAF"


def _api_model() -> dict[str, Any]:
    from tests.template.conftest import load_template

    api = load_template((ROOT / "template.yaml").read_text())["Resources"]["ContractsApi"]["Properties"]
    return api["DefinitionBody"]["components"]["schemas"]["ContractSigned"]


# The request model API Gateway validates POST /contracts/signed with, as an operation schemathesis can drive.
API_MODEL = _api_model()
CONTRACTS_API = schemathesis.openapi.from_dict({
    "openapi": "3.0.3", "info": {"title": "contracts", "version": "1"},
    "paths": {"/contracts/signed": {"post": {
        "requestBody": {"required": True, "content": {"application/json": {"schema": API_MODEL}}},
        "responses": {"202": {"description": "queued"}}}}},
})["/contracts/signed"]["POST"]


@dataclass
class Delivery:
    failed: list[str]
    dead_letters: list[dict[str, Any]]
    billing_calls: int
    salesforce_writes: int


@dataclass
class Consumer:
    sqs: Any
    url: str
    arn: str
    dlq_url: str
    billing: BillingServer
    emulator: Any
    context_factory: Any
    logs: io.StringIO

    def deliver(self, *bodies: str) -> Delivery:
        """Queue `bodies`, let the event source mapping invoke the consumer once, delete what succeeded."""
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.url, MessageBody=body)
        messages: list[dict[str, Any]] = []
        while len(messages) < len(bodies):
            messages += self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                 AttributeNames=["All"]).get("Messages", [])
        billing_before = len(self.billing.requests())
        writes_before = len(salesforce_writes(self.emulator))
        response = consumer.handler({"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "AIDAFUZZ",
                           "ApproximateFirstReceiveTimestamp": "0"},
            "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
            "eventSourceARN": self.arn, "awsRegion": "eu-west-1"} for m in messages]}, self.context_factory())
        failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        dead = []
        while batch := self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10,
                                                MessageAttributeNames=["All"]).get("Messages", []):
            for m in batch:
                dead.append({"body": m["Body"], **{k: v["StringValue"] for k, v in m["MessageAttributes"].items()}})
                self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=m["ReceiptHandle"])
        return Delivery(failed, dead, len(self.billing.requests()) - billing_before,
                        len(salesforce_writes(self.emulator)) - writes_before)


@pytest.fixture(scope="module")
def billing_server() -> Iterator[BillingServer]:
    with BillingServer() as billing:
        yield billing


@pytest.fixture
def billing_consumer(salesforce: Any, billing_server: BillingServer, monkeypatch: pytest.MonkeyPatch,
                     lambda_context: Any) -> Iterator[Consumer]:
    sqs = boto3.client("sqs")
    dlq_url = sqs.create_queue(QueueName="contracts-dlq")["QueueUrl"]
    url = sqs.create_queue(QueueName="contracts", Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("dynamodb").create_table(
        TableName="state", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    for name, value in {"CONTRACTS_DLQ_URL": dlq_url, "IDEMPOTENCY_TABLE_NAME": "state",
                        "BILLING_API_URL": billing_server.url, "BILLING_READ_TIMEOUT": "2",
                        "RETRY_BASE_SECONDS": "0"}.items():
        monkeypatch.setenv(name, value)
    billing_server.start()
    billing_server.reset()
    application.reset()
    stream = io.StringIO()
    log_handler = logging.StreamHandler(stream)
    log_handler.setFormatter(logger.registered_formatter)
    logger.addHandler(log_handler)
    yield Consumer(sqs, url, arn, dlq_url, billing_server, salesforce,
                   lambda: type(lambda_context)(timeout_ms=60_000), stream)
    logging.getLogger(logger.name).removeHandler(log_handler)
    application.reset()


def api_body(**changes: Any) -> dict[str, Any]:
    return {"contract_id": CONTRACT, "account_id": ACCOUNT, "signed_at": "2025-03-01T09:30:00Z", **changes}


def relay_body(**payload: Any) -> dict[str, Any]:
    return {"version": "0", "id": "7a3f1c2e-0000-4000-8000-000000000001", "detail-type": "Contract_Signed__e",
            "source": "aws.partner/salesforce.com/00D5e000000KQ2eEAG/0YL5e0000004Dfg4AE", "account": "123456789012",
            "time": "2025-03-01T09:30:01Z", "region": "eu-west-1", "resources": [],
            "detail": {"payload": {"Contract_Id__c": CONTRACT, "Account_Id__c": ACCOUNT,
                                   "Signed_At__c": "2025-03-01T09:30:00.000Z", **payload}}}


def outbound_body(**contract: Any) -> dict[str, Any]:
    return {"message_type": "salesforce.outbound_message", "notification_id": "04l5e00000Gx7QzAAJ",
            "organization_id": "00D5e000000KQ2eEAG",
            "contract": {"Id": CONTRACT, "AccountId": ACCOUNT, "CustomerSignedDate": "2025-03-01", **contract}}


def assert_refused(delivery: Delivery, logs: io.StringIO, count: int = 1) -> list[dict[str, Any]]:
    """Dead-lettered at once with a reason, not retried, and nobody downstream heard of it."""
    assert delivery.failed == [], "a malformed message is not retried"
    assert len(delivery.dead_letters) == count
    assert {d["failure_reason"] for d in delivery.dead_letters} == {"invalid_message"}
    assert all(d["failure_detail"].strip() for d in delivery.dead_letters)
    assert delivery.billing_calls == 0
    assert delivery.salesforce_writes == 0
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    assert any(line.get("reason") == "invalid_message" and line.get("error") for line in lines), "a log line says why"
    return delivery.dead_letters


MALFORMED = {
    "not-json": "contract 800 signed",
    "empty": "",
    "json-string": json.dumps("8005e000001AbCdAAK"),
    "json-array": json.dumps([api_body()]),
    "json-null": "null",
    "nan": '{"contract_id": NaN}',
    "huge-number": '{"contract_id": ' + "9" * 5000 + "}",
    "missing-account": json.dumps({"contract_id": CONTRACT}),
    "contract-as-int": json.dumps(api_body(contract_id=8005)),
    "contract-as-list": json.dumps(api_body(contract_id=[CONTRACT])),
    "wrong-prefix": json.dumps(api_body(contract_id=ACCOUNT)),
    "bad-checksum": json.dumps(api_body(contract_id="8005e000001AbCdAAA")),
    "control-chars": json.dumps(api_body(contract_id="8005e000001\x00bCd")),
    "unicode-id": json.dumps(api_body(contract_id="8005e000001AbCd\u0130AK")),
    "bad-date": json.dumps(api_body(signed_at="2025-02-30T09:30:00Z")),
    "oversized": json.dumps(api_body(contract_id="8" * OVERSIZED)),
    "relay-wrong-source": json.dumps({**relay_body(), "source": "aws.partner/evil.example"}),
    "relay-no-payload": json.dumps({**relay_body(), "detail": {}}),
    "relay-bad-time": json.dumps(relay_body(Signed_At__c={"at": 1})),
    "outbound-no-contract": json.dumps({**outbound_body(), "contract": None}),
    "outbound-long-notification": json.dumps({**outbound_body(), "notification_id": "n" * 41}),
    "outbound-wrong-type": json.dumps({**outbound_body(), "message_type": "salesforce.outbound_messages"}),
}


def test_malformed_messages_go_to_the_dlq_with_a_reason(billing_consumer: Consumer) -> None:
    """All in one batch, as the event source mapping would deliver them: each judged on its own."""
    bodies = list(MALFORMED.values())
    dead = assert_refused(billing_consumer.deliver(*bodies[:10]), billing_consumer.logs, 10)
    dead += assert_refused(billing_consumer.deliver(*bodies[10:]), billing_consumer.logs, len(bodies) - 10)
    assert sorted(d["body"] for d in dead) == sorted(bodies), "the DLQ keeps the original body, unchanged"


def test_truncated_bodies_are_refused(billing_consumer: Consumer) -> None:
    for shape in (api_body, relay_body, outbound_body):
        parts = truncations(json.dumps(shape()), points=10)
        assert_refused(billing_consumer.deliver(*parts), billing_consumer.logs, len(parts))


@given(body=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                   lambda inner: st.lists(inner, max_size=4)
                                   | st.dictionaries(st.text(max_size=12), inner, max_size=4)).map(json.dumps)))
@example(body=json.dumps({"detail-type": "Contract_Signed__e"}))
@example(body=json.dumps({"message_type": "salesforce.outbound_message"}))
@FUZZ
def test_arbitrary_bodies_are_refused(billing_consumer: Consumer, body: str) -> None:
    assert_refused(billing_consumer.deliver(body), billing_consumer.logs)


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable() and not value[:1].isspace()


@given(case=st.one_of(CONTRACTS_API.as_strategy(GenerationMode.POSITIVE),
                      CONTRACTS_API.as_strategy(GenerationMode.NEGATIVE)))
@FEW
def test_bodies_from_the_api_model(billing_consumer: Consumer, case: Any) -> None:
    """Whatever the API could queue, the consumer bills it or dead-letters it with a reason; nothing escapes."""
    raw = case.body  # negative cases may be bytes or text that is not JSON
    body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw if isinstance(raw, str) \
        else json.dumps(raw)
    request_id = case.body.get("request_id") if isinstance(case.body, dict) else None
    # Known bug, reported: see test_request_id_that_is_not_a_header_value_is_billed below.
    assume(not isinstance(request_id, str) or _header_safe(request_id))
    delivery = billing_consumer.deliver(body)
    reasons = {d["failure_reason"] for d in delivery.dead_letters}
    event(f"outcome {sorted(reasons) or 'billed'}")
    assert delivery.failed == [], "billing and Salesforce are up: nothing is left for a retry"
    if "invalid_message" in reasons:
        assert delivery.billing_calls == 0
        assert delivery.salesforce_writes == 0
    if delivery.dead_letters:
        assert delivery.dead_letters[0]["body"] == body


def test_extra_fields_do_not_stop_a_valid_contract(billing_consumer: Consumer) -> None:
    """Unknown properties are ignored (API Gateway's model refuses them; Event Relay and Outbound Messages add
    their own): the contract is billed once and written back."""
    access = get_access()
    account = access.request("POST", "sobjects/Account", json={"Name": "Extra Fields Ltd"})["id"]
    contract = access.request("POST", "sobjects/Contract", json={
        "AccountId": account, "StartDate": "2025-03-01", "ContractTerm": 12, "Billing_Status__c": "Pending"})["id"]
    body = json.dumps(api_body(contract_id=contract, account_id=account, note="\u202e\u0000 extra", nested={"a": [1]}))
    delivery = billing_consumer.deliver(body)
    assert (delivery.failed, delivery.dead_letters) == ([], [])
    assert len(billing_consumer.billing.accounts(to_18(contract))) == 1
    assert access.request("GET", f"sobjects/Contract/{contract}")["Billing_Status__c"] == "Active"


# -- found by this suite, since fixed ------------------------------------------------------------------

def test_deeply_nested_body_is_refused_at_once(billing_consumer: Consumer) -> None:
    assert_refused(billing_consumer.deliver(deeply_nested(5_000)), billing_consumer.logs)


@pytest.mark.parametrize(("request_id", "header"), [
    ("line\nbreak", "line%0Abreak"), (" leading space", "%20leading%20space"),
    ("caf\u00e9 \u20ac5", "caf%C3%A9%20%E2%82%AC5"), ("ok id-7/x", "ok id-7/x"),
], ids=["newline", "leading-space", "non-latin-1", "plain"])
def test_request_id_that_is_not_a_header_value_is_billed(billing_consumer: Consumer, request_id: str,
                                                          header: str) -> None:
    """Any request_id the API model allows reaches billing as a valid X-Correlation-Id (percent-encoded when it
    could not be a header value as is), and the contract is billed."""
    access = get_access()
    account = access.request("POST", "sobjects/Account", json={"Name": "Header Ltd"})["id"]
    contract = access.request("POST", "sobjects/Contract", json={
        "AccountId": account, "StartDate": "2025-03-01", "ContractTerm": 12, "Billing_Status__c": "Pending"})["id"]
    delivery = billing_consumer.deliver(json.dumps(api_body(contract_id=contract, account_id=account,
                                                            request_id=request_id)))
    assert (delivery.failed, delivery.dead_letters) == ([], [])
    assert len(billing_consumer.billing.accounts(to_18(contract))) == 1
    [sent] = [r for r in billing_consumer.billing.requests() if r["method"] == "POST"
              and r["headers"].get("idempotency-key") == f"contract-{to_18(contract)}"]
    assert sent["headers"]["x-correlation-id"] == header
