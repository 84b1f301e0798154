"""Fixtures for the billing consumer: moto SQS + DynamoDB, the billing stand-in, the Salesforce emulator
(through the shared `salesforce` fixture) and a driver that plays Lambda's SQS event source mapping."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests
from billing_consumer import consumer as application
from billing_consumer import handler as consumer

from salesforce_access.observability import logger
from salesforce_emulator.connection import fetch_token, https_session
from stand_ins.billing import BillingServer

MAX_RECEIVE_COUNT = 5


@pytest.fixture(scope="session")
def billing_server() -> Iterator[BillingServer]:
    with BillingServer() as billing:
        yield billing


@pytest.fixture
def billing(billing_server: BillingServer) -> Iterator[BillingServer]:
    billing_server.start()  # a test may have stopped it
    billing_server.reset()
    yield billing_server
    billing_server.start()
    billing_server.reset()


@dataclass
class Queues:
    sqs: Any
    url: str
    arn: str
    dlq_url: str

    def send(self, body: dict[str, Any] | str, **attributes: str) -> str:
        text = body if isinstance(body, str) else json.dumps(body)
        extra = {"MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}}
        return self.sqs.send_message(QueueUrl=self.url, MessageBody=text, **(extra if attributes else {}))["MessageId"]

    def receive(self, url: str | None = None, max_messages: int = 10) -> list[dict[str, Any]]:
        return self.sqs.receive_message(QueueUrl=url or self.url, MaxNumberOfMessages=max_messages,
                                        AttributeNames=["All"], MessageAttributeNames=["All"],
                                        WaitTimeSeconds=0).get("Messages", [])

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.receive(self.dlq_url)

    def count(self, url: str | None = None) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url or self.url, AttributeNames=["All"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping builds from received messages."""
    records = []
    for message in messages:
        attributes = message.get("Attributes", {})
        records.append({
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {
                "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                "SentTimestamp": attributes.get("SentTimestamp", "0"),
                "SenderId": attributes.get("SenderId", "AIDAEXAMPLE"),
                "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
            },
            "messageAttributes": {
                name: {"stringValue": value.get("StringValue"), "stringListValues": [], "binaryListValues": [],
                       "dataType": value["DataType"]}
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": queue_arn.split(":")[3],
        })
    return {"Records": records}


@dataclass
class Delivery:
    """What one poll did: the handler's answer and which messages were deleted or left for retry."""

    response: dict[str, Any]
    received: list[str]
    failed: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> list[str]:
        return [m for m in self.received if m not in self.failed]


class EventSourceMapping:
    """Plays the SQS -> Lambda event source mapping: receive, invoke, delete what was not reported failed."""

    def __init__(self, queues: Queues, context_factory: Any):
        self.queues = queues
        self.context_factory = context_factory

    def poll(self, context: Any = None, messages: list[dict[str, Any]] | None = None) -> Delivery:
        messages = self.queues.receive() if messages is None else messages
        if not messages:  # the mapping never invokes a function with an empty batch
            return Delivery({"batchItemFailures": []}, [])
        event = sqs_event(messages, self.queues.arn)
        response = consumer.handler(event, context or self.context_factory())
        failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
        for message in messages:
            if message["MessageId"] not in failed:
                self.queues.sqs.delete_message(QueueUrl=self.queues.url, ReceiptHandle=message["ReceiptHandle"])
        return Delivery(response, [m["MessageId"] for m in messages], failed)


@pytest.fixture
def queues(aws: None, monkeypatch: pytest.MonkeyPatch) -> Queues:
    sqs = boto3.client("sqs")
    dlq_url = sqs.create_queue(QueueName="contracts-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="contracts", Attributes={
        "VisibilityTimeout": "180",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}),
    })["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    monkeypatch.setenv("CONTRACTS_DLQ_URL", dlq_url)
    return Queues(sqs, url, arn, dlq_url)


@pytest.fixture
def state_table(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    dynamodb = boto3.resource("dynamodb")
    table = dynamodb.create_table(TableName="state", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                                  AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                  BillingMode="PAY_PER_REQUEST")
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", "state")
    return table


@pytest.fixture
def consumer_env(queues: Queues, state_table: Any, billing: BillingServer, salesforce: Any,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Everything the deployed consumer gets from its environment; redelivery without delay by default."""
    monkeypatch.setenv("BILLING_API_URL", billing.url)
    monkeypatch.setenv("BILLING_READ_TIMEOUT", "1")
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0")
    application.reset()
    yield
    application.reset()


@pytest.fixture
def esm(consumer_env: None, queues: Queues, lambda_context: Any) -> EventSourceMapping:
    return EventSourceMapping(queues, lambda: type(lambda_context)(timeout_ms=60_000))


@pytest.fixture
def consumer_logs() -> Iterator[io.StringIO]:
    """The consumer's JSON log lines, as CloudWatch would get them."""
    stream = io.StringIO()
    log_handler = logging.StreamHandler(stream)
    log_handler.setFormatter(logger.registered_formatter)
    logger.addHandler(log_handler)
    try:
        yield stream
    finally:
        logging.getLogger(logger.name).removeHandler(log_handler)


# -- Salesforce records ------------------------------------------------------------------------------

class Org:
    """Creates and reads records in the emulator as an admin would (not through the code under test)."""

    def __init__(self, info: dict[str, Any]):
        self.info = info
        self.session = https_session(info)
        self.session.headers["Authorization"] = f"Bearer {fetch_token(info, self.session)}"
        self.base = f"{info['instance_url']}/services/data/v{info['api_version']}"

    def create(self, sobject: str, fields: dict[str, Any]) -> str:
        response = self.session.post(f"{self.base}/sobjects/{sobject}/", json=fields, timeout=10)
        response.raise_for_status()
        return response.json()["id"]

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        response = self.session.get(f"{self.base}/sobjects/{sobject}/{record_id}", timeout=10)
        response.raise_for_status()
        return response.json()

    def new_contract(self) -> tuple[str, str]:
        account_id = self.create("Account", {"Name": "Acme Billing Test"})
        contract_id = self.create("Contract", {"AccountId": account_id, "StartDate": "2025-03-01",
                                               "ContractTerm": 12, "Billing_Status__c": "Pending"})
        return contract_id, account_id


@pytest.fixture
def org(salesforce: Any) -> Org:
    return Org(salesforce.info)


def api_body(contract_id: str, account_id: str, **extra: Any) -> dict[str, Any]:
    return {"contract_id": contract_id, "account_id": account_id, "signed_at": "2025-03-01T09:30:00Z", **extra}


def relay_event(contract_id: str, account_id: str, event_id: str = "7a3f1c2e-0000-4000-8000-000000000001",
                signed_at: Any = "2025-03-01T09:30:00.000Z") -> dict[str, Any]:
    return {
        "version": "0", "id": event_id, "detail-type": "Contract_Signed__e",
        "source": "aws.partner/salesforce.com/00D5e000000KQ2eEAG/0YL5e0000004Dfg4AE",
        "account": "123456789012", "time": "2025-03-01T09:30:01Z", "region": "eu-west-1", "resources": [],
        "detail": {"payload": {"Contract_Id__c": contract_id, "Account_Id__c": account_id,
                               "Signed_At__c": signed_at, "CreatedById": "005000000000001AAA",
                               "CreatedDate": "2025-03-01T09:30:00.000Z"},
                   "schemaId": "0XSRM000000Fxts", "id": "c4e8b9a0-0000-4000-8000-000000000002"},
    }


def outbound_message(contract_id: str, account_id: str, notification_id: str = "04l5e00000Gx7QzAAJ") -> dict:
    return {"message_type": "salesforce.outbound_message", "notification_id": notification_id,
            "organization_id": "00D5e000000KQ2eEAG", "action_id": "04k5e000000CaRkAAK",
            "contract": {"Id": contract_id, "AccountId": account_id, "CustomerSignedDate": "2025-03-01",
                         "ContractNumber": "00000100"}}


def billing_posts(billing: BillingServer) -> list[dict[str, Any]]:
    return [r for r in billing.requests() if r["method"] == "POST" and r["path"] == "/billing-accounts"]


def quick_check(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=1).ok
    except requests.RequestException:
        return False
