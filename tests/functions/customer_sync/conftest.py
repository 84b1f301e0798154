"""Fixtures for the customer sync: a fresh emulator and ERP stand-in per test, moto DynamoDB / S3 / SQS, and a
driver that plays EventBridge Scheduler and the SQS event source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests
from customer_sync import container
from customer_sync import handler as sync_handler
from customer_sync.report import read_report

from salesforce_access import RetryPolicy, get_access
from salesforce_emulator import Emulator
from salesforce_emulator.connection import https_session
from stand_ins.erp import ErpServer

TABLE, BUCKET, QUEUE = "state", "sync-reports", "customer-sync"
ERP_USER = "salesforce-sync"


@pytest.fixture
def salesforce_emulator() -> Iterator[Emulator]:
    """A fresh org per test (deleted Accounts stay queryable, so one test's deletes would leak into the next)."""
    with Emulator(daily_api_limit=1_000_000) as emu:
        yield emu


class Erp:
    """The ERP stand-in and what a person does in the ERP."""

    def __init__(self, server: ErpServer):
        self.server = server
        self.url = server.url

    def create(self, name: str, **fields: Any) -> str:
        body = {"name": name, "email": fields.get("email"), "phone": fields.get("phone"), "active": True,
                "billing_address": fields.get("billing_address"), "updated_by": "erp-clerk"}
        response = requests.post(f"{self.url}/customers", json=body, timeout=5)
        response.raise_for_status()
        return response.json()["customer"]["customer_id"]

    def patch(self, customer_id: str, **fields: Any) -> dict[str, Any]:
        response = requests.patch(f"{self.url}/customers/{customer_id}",
                                  json={**fields, "updated_by": "erp-clerk"}, timeout=5)
        response.raise_for_status()
        return response.json()["customer"]

    def customers(self) -> list[dict[str, Any]]:
        with self.server.app.lock:
            return [c.as_json() for c in self.server.customers.by_id.values()]

    def writes(self) -> list[dict[str, Any]]:
        return [r for r in self.server.requests() if r["method"] in ("POST", "PUT", "PATCH")]


@pytest.fixture
def erp() -> Iterator[Erp]:
    with ErpServer() as server:
        with server.app.lock:  # start empty: the seed customers would sync into every test
            server.customers.clear()
        yield Erp(server)


class Admin:
    """Salesforce as a person (the admin user), whose changes the sync must carry to the ERP."""

    def __init__(self, emu: Emulator):
        self.info = info = emu.info
        self.session = https_session(info)
        self.login()
        self.base = f"{info['instance_url']}/services/data/v{info['api_version']}"

    def login(self) -> None:
        info = self.info
        token = self.session.post(f"{info['login_url']}/services/oauth2/token", timeout=10, data={
            "grant_type": "password", "client_id": info["client_id"], "client_secret": info["client_secret"],
            "username": info["admin_username"], "password": info["admin_password"]}).json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"

    def query(self, soql: str) -> list[dict[str, Any]]:
        url, params = f"{self.base}/query", {"q": soql}
        rows: list[dict[str, Any]] = []
        while url:
            response = self.session.get(url, params=params, timeout=30)
            if response.status_code == 401:  # a test expired every token
                self.login()
                continue
            body = response.json()
            rows += body["records"]
            url = f"{self.base.split('/services')[0]}{body['nextRecordsUrl']}" if body.get("nextRecordsUrl") else ""
            params = {}
        return rows

    def create_many(self, records: list[dict[str, Any]]) -> list[str]:
        ids = []
        for start in range(0, len(records), 200):
            batch = [{"attributes": {"type": "Account"}, **r} for r in records[start:start + 200]]
            body = self.session.post(f"{self.base}/composite/sobjects", json={"allOrNone": True, "records": batch},
                                     timeout=30).json()
            ids += [item["id"] for item in body]
        return ids

    def update(self, account_id: str, fields: dict[str, Any]) -> None:
        self.session.patch(f"{self.base}/sobjects/Account/{account_id}", json=fields, timeout=10).raise_for_status()

    def delete(self, account_id: str) -> None:
        self.session.delete(f"{self.base}/sobjects/Account/{account_id}", timeout=10).raise_for_status()

    def accounts(self) -> list[dict[str, Any]]:
        fields = ("Id, Name, Phone, Customer_Email__c, BillingStreet, BillingCity, BillingPostalCode, "
                  "BillingCountry, Active__c, ERP_Customer_Id__c, LastModifiedById")
        return self.query(f"SELECT {fields} FROM Account")  # noqa: S608 - constant


@pytest.fixture
def admin(salesforce: Emulator) -> Admin:
    return Admin(salesforce)


class ShortContext:
    """A Lambda context whose remaining time drops below the reserve after `checks` engine checks."""

    def __init__(self, checks: int, plenty_ms: int = 900_000, short_ms: int = 60_000):
        self.function_name = "customer-sync-worker"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:customer-sync-worker"
        self.aws_request_id = "req"
        self.checks, self.plenty_ms, self.short_ms = checks, plenty_ms, short_ms
        self.calls = 0

    def get_remaining_time_in_millis(self) -> int:
        self.calls += 1
        return self.plenty_ms if self.calls <= self.checks else self.short_ms


@dataclass
class SyncStack:
    sqs: Any
    s3: Any
    dynamodb: Any
    queue_url: str
    lambda_context: Any
    invocations: list[dict[str, Any]] = field(default_factory=list)

    def start(self, event: dict[str, Any] | None = None, context: Any = None) -> dict[str, Any]:
        return sync_handler.start(event if event is not None else {"mode": "incremental", "trigger": "test"},
                                  context or self.lambda_context)

    def pending(self) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def work_once(self, context: Any = None) -> dict[str, Any] | None:
        """Receive one message and hand it to the worker as Lambda's event source mapping would."""
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=0,
                                            AttributeNames=["All"]).get("Messages", [])
        if not messages:
            return None
        message = messages[0]
        result = self.deliver(message, context)
        if not result.get("batchItemFailures"):
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return result

    def deliver(self, message: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """Hand one received message to the worker (without deleting it, as when the worker dies)."""
        event = {"Records": [{
            "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "x",
                           "ApproximateFirstReceiveTimestamp": "0"},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:eu-west-1:123456789012:{QUEUE}", "awsRegion": "eu-west-1"}]}
        self.invocations.append(json.loads(message["Body"]))
        return dict(sync_handler.work(event, context or self.lambda_context))

    def drain(self, context_factory: Callable[[], Any] | None = None, limit: int = 200) -> int:
        """Run the worker until the queue is empty; returns the number of worker invocations."""
        count = 0
        while count < limit and self.work_once(context_factory() if context_factory else None) is not None:
            count += 1
        return count

    def sync(self, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """A whole run: start, then every continuation; returns the start answer."""
        answer = self.start(event)
        self.drain()
        return answer

    def run_item(self, run_id: str) -> dict[str, Any]:
        from customer_sync.state import RunState, run_item_id

        item = self.dynamodb.get_item(TableName=TABLE, Key={"id": {"S": run_item_id(run_id)}})["Item"]
        return RunState.from_json(item["state"]["S"]).__dict__

    def summary(self, run_id: str) -> dict[str, Any]:
        body = self.s3.get_object(Bucket=BUCKET, Key=f"customer-sync/runs/{run_id}/summary.json")["Body"].read()
        return json.loads(body)

    def report(self, run_id: str) -> list[dict[str, Any]]:
        return read_report(self.s3, BUCKET, run_id)

    def watermarks(self) -> dict[str, Any]:
        item = self.dynamodb.get_item(TableName=TABLE, Key={"id": {"S": "customer-sync#watermarks"}}).get("Item", {})
        return {k: v["S"] for k, v in item.items() if k in ("salesforce", "erp")}


@pytest.fixture
def stack(salesforce: Emulator, erp: Erp, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> Iterator[SyncStack]:
    dynamodb, s3, sqs = boto3.client("dynamodb"), boto3.client("s3"), boto3.client("sqs")
    dynamodb.create_table(TableName=TABLE, AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    for name, value in {"STATE_TABLE_NAME": TABLE, "SYNC_QUEUE_URL": queue_url, "SYNC_REPORT_BUCKET": BUCKET,
                        "ERP_BASE_URL": erp.url, "SYNC_WATERMARK_LAG_SECONDS": "0", "SYNC_ERP_USER": ERP_USER,
                        "SYNC_TIME_RESERVE_SECONDS": "90", "SALESFORCE_BULK_THRESHOLD": "50",
                        "SYNC_BULK_PART_RECORDS": "1000", "SYNC_BULK_QUERY_PAGE_SIZE": "100",
                        "SYNC_ERP_PAGE_SIZE": "100", "ERP_MAX_ATTEMPTS": "2"}.items():
        monkeypatch.setenv(name, value)
    container.reset()
    access = get_access()
    access.session.retry = RetryPolicy(base_delay=0.01, max_delay=0.05)  # give up on injected faults fast
    access.bulk.poll = type(access.bulk.poll)(initial=0.02, max_delay=0.1)
    lambda_context.timeout_ms = 900_000
    yield SyncStack(sqs, s3, dynamodb, queue_url, lambda_context)
    container.reset()

