"""Fixtures for order intake: the Salesforce emulator (shared `salesforce` fixture), moto DynamoDB, SQS and
Secrets Manager, a signing key, products in the standard price book, and a caller that signs API Gateway
events the way the e-commerce platform signs its requests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from order_intake import api, container, worker

from edge_kit.signatures import signed_headers
from salesforce_access import get_access

SIGNING_KEY = "whsec-test-3f9a0c1e5b7d4a2f8e6c"
MAX_RECEIVE_COUNT = 5


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    raw: str


@dataclass
class Stack:
    """The deployed pieces, played by moto: state table, queue + DLQ, signing secret."""

    sqs: Any
    table: Any
    queue_url: str
    queue_arn: str
    dlq_url: str
    secret_arn: str
    key: str = SIGNING_KEY

    def receive(self, url: str | None = None, max_messages: int = 10) -> list[dict[str, Any]]:
        return self.sqs.receive_message(QueueUrl=url or self.queue_url, MaxNumberOfMessages=max_messages,
                                        AttributeNames=["All"], MessageAttributeNames=["All"],
                                        WaitTimeSeconds=0).get("Messages", [])

    def count(self, url: str | None = None) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url or self.queue_url,
                                                   AttributeNames=["All"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def stack(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(TableName="state", BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    sqs = boto3.client("sqs")
    dlq_url = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName="orders", Attributes={
        "VisibilityTimeout": "180",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}),
    })["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    secret_arn = boto3.client("secretsmanager").create_secret(
        Name="orders/signing", SecretString=json.dumps({"current": SIGNING_KEY}))["ARN"]
    for name, value in {"STATE_TABLE_NAME": "state", "ORDER_SIGNING_SECRET_ARN": secret_arn,
                        "ORDER_QUEUE_URL": queue_url, "ORDER_DLQ_URL": dlq_url}.items():
        monkeypatch.setenv(name, value)
    container.reset()
    yield Stack(sqs, boto3.resource("dynamodb").Table("state"), queue_url, queue_arn, dlq_url, secret_arn)
    container.reset()


@dataclass
class Catalog:
    """Products created in the emulator's org for one test (codes are unique: the emulator is shared)."""

    codes: dict[str, str] = field(default_factory=dict)  # short name -> ProductCode
    entries: dict[str, str] = field(default_factory=dict)  # ProductCode -> PricebookEntry Id
    pricebook_id: str = ""

    def __getitem__(self, name: str) -> str:
        return self.codes[name]


@pytest.fixture
def products(salesforce: Any) -> Catalog:
    """Three active products in the standard price book, plus an inactive one."""
    access = get_access()
    tag = uuid.uuid4().hex[:8].upper()
    catalog = Catalog()
    catalog.pricebook_id = next(access.query("SELECT Id FROM Pricebook2 WHERE IsStandard = true"))["Id"]
    for name, active in (("widget", True), ("gadget", True), ("gizmo", True), ("retired", False)):
        code = f"{name.upper()}-{tag}"
        product = access.request("POST", "sobjects/Product2", json={"Name": name, "ProductCode": code,
                                                                     "IsActive": True})
        entry = access.request("POST", "sobjects/PricebookEntry", json={
            "Pricebook2Id": catalog.pricebook_id, "Product2Id": product["id"], "UnitPrice": 10, "IsActive": active})
        catalog.codes[name] = code
        catalog.entries[code] = entry["id"]
    salesforce.clear_requests()
    return catalog


def make_order(products: Catalog, number: str | None = None, **changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "order_number": number or f"WEB-{uuid.uuid4().hex[:10]}",
        "order_date": "2025-03-14",
        "customer": {"erp_customer_id": f"C-{uuid.uuid4().hex[:8]}", "name": "Acme Retail GmbH",
                     "phone": "+49 30 1234"},
        "billing_address": {"street": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "shipping_address": {"street": "Lagerweg 7", "city": "Potsdam", "postal_code": "14467", "country": "DE"},
        "lines": [
            {"product_code": products["widget"], "quantity": 2, "unit_price": "19.90"},
            {"product_code": products["gadget"], "quantity": 1, "unit_price": 249},
            {"product_code": products["gizmo"], "quantity": 5, "unit_price": "3.5", "description": "gift wrapped"},
        ],
    }
    order.update(changes)
    return order


def api_event(path: str, body: str | bytes, headers: dict[str, str], *, base64_encoded: bool = False) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, as the /orders resources receive it."""
    text = body.decode() if isinstance(body, bytes) else body
    request_id = str(uuid.uuid4())
    return {
        "resource": path, "path": path, "httpMethod": "POST",
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": path, "httpMethod": "POST", "path": f"/prod{path}", "stage": "prod",
                           "requestId": request_id, "accountId": "123456789012", "apiId": "abc123",
                           "identity": {"sourceIp": "203.0.113.9", "apiKeyId": "key-1"}},
        "body": text, "isBase64Encoded": base64_encoded,
    }


class Caller:
    """The e-commerce platform: signs and sends a body to the API function like API Gateway would."""

    def __init__(self, key: str, context_factory: Any):
        self.key = key
        self.context_factory = context_factory

    def post(self, body: Any, path: str = "/orders", *, headers: dict[str, str] | None = None,
             timestamp: int | None = None, key: str | None = None) -> Reply:
        raw = body if isinstance(body, str | bytes) else json.dumps(body)
        data = raw if isinstance(raw, bytes) else raw.encode()
        signed = {"Content-Type": "application/json", **signed_headers(key or self.key, data, timestamp)}
        if headers is not None:
            signed = headers
        response = api.handler(api_event(path, data, signed), self.context_factory())
        text = response["body"]
        headers = {**(response.get("headers") or {}),
                   **{k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items() if v}}
        return Reply(response["statusCode"], headers, json.loads(text) if text else {}, text)


@pytest.fixture
def caller(stack: Stack, lambda_context: Any) -> Caller:
    return Caller(stack.key, type(lambda_context))


def composite_calls(emulator: Any) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if r["path"].endswith("/composite")]


def api_calls(emulator: Any) -> list[dict[str, Any]]:
    """Calls that count against the org's API allocation (the token endpoint does not)."""
    return [r for r in emulator.requests() if r["path"].startswith("/services/data/")]


# -- the SQS event source mapping -----------------------------------------------------------------------


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping builds from received messages."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": m.get("Attributes", {}).get("ApproximateReceiveCount", "1"),
                       "SentTimestamp": m.get("Attributes", {}).get("SentTimestamp", "0"),
                       "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "0"},
        "messageAttributes": {name: {"stringValue": v.get("StringValue"), "stringListValues": [],
                                     "binaryListValues": [], "dataType": v["DataType"]}
                              for name, v in m.get("MessageAttributes", {}).items()},
        "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    } for m in messages]}


@dataclass
class Poll:
    received: list[str]
    failed: list[str]
    response: dict[str, Any]
    messages: list[dict[str, Any]]


class EventSourceMapping:
    """Plays the SQS -> worker mapping: receive up to `batch_size` messages, invoke, delete what succeeded."""

    def __init__(self, stack: Stack, context_factory: Any, batch_size: int = 100):
        self.stack = stack
        self.context_factory = context_factory
        self.batch_size = batch_size

    def poll(self) -> Poll | None:
        messages: list[dict[str, Any]] = []
        while len(messages) < self.batch_size:
            got = self.stack.receive(max_messages=min(10, self.batch_size - len(messages)))
            if not got:
                break
            messages += got
        if not messages:
            return None
        response = worker.handler(sqs_event(messages, self.stack.queue_arn), self.context_factory())
        failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.stack.sqs.delete_message_batch(QueueUrl=self.stack.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start:start + 10])])
        return Poll([m["MessageId"] for m in messages], failed, response, messages)

    def drain(self, max_polls: int = 1000) -> list[Poll]:
        polls = []
        while len(polls) < max_polls and (poll := self.poll()) is not None:
            polls.append(poll)
        return polls


@pytest.fixture
def mapping(stack: Stack, lambda_context: Any) -> EventSourceMapping:
    return EventSourceMapping(stack, type(lambda_context))
