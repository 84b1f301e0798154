"""Pattern 3 fed bad input: the start event (EventBridge Scheduler's input, or an operator's on-demand
invocation), the worker's step messages, and outside values that reach its SOQL (ERP customer ids, Salesforce
ids the ERP holds). The Salesforce emulator, the ERP stand-in, moto.

Documented contract (customer_sync/handler.py): a bad start event is answered ``{"status": "rejected",
"errors": [...]}`` naming each problem, with a log line, before anything is locked, queued or asked of
Salesforce; an unusable step message is dropped with a log line (a retry could never make it usable).
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from customer_sync import container
from customer_sync import handler as sync_handler
from customer_sync.salesforce import SalesforceAccounts
from customer_sync.steps import StepNotQueued
from hypothesis import given
from hypothesis import strategies as st

from salesforce_access import get_access
from salesforce_access.observability import logger
from stand_ins.erp import ErpServer

from .conftest import FUZZ, QueryLog, deeply_nested, truncations

TABLE, BUCKET, QUEUE = "state", "sync-reports", "customer-sync"


@dataclass
class Sync:
    emulator: Any
    sqs: Any
    dynamodb: Any
    queue_url: str
    context: Any
    logs: io.StringIO

    def state_items(self) -> int:
        return self.dynamodb.scan(TableName=TABLE, Select="COUNT")["Count"]

    def pending(self) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def lines(self, message: str) -> list[dict[str, Any]]:
        found = [json.loads(line) for line in self.logs.getvalue().splitlines() if line.startswith("{")]
        return [line for line in found if line.get("message") == message]

    def work(self, *bodies: str) -> dict[str, Any]:
        return sync_handler.work({"Records": [{
            "messageId": f"m{i}", "receiptHandle": f"r{i}", "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "x",
                           "ApproximateFirstReceiveTimestamp": "0"}, "messageAttributes": {}, "md5OfBody": "",
            "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:eu-west-1:123456789012:{QUEUE}",
            "awsRegion": "eu-west-1"} for i, body in enumerate(bodies)]}, self.context)


@pytest.fixture(scope="module")
def erp_server() -> Iterator[ErpServer]:
    with ErpServer() as erp:
        yield erp


@pytest.fixture
def sync(salesforce: Any, erp_server: ErpServer, monkeypatch: pytest.MonkeyPatch,
         lambda_context: Any) -> Iterator[Sync]:
    dynamodb, s3, sqs = boto3.client("dynamodb"), boto3.client("s3"), boto3.client("sqs")
    dynamodb.create_table(TableName=TABLE, AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    for name, value in {"STATE_TABLE_NAME": TABLE, "SYNC_QUEUE_URL": queue_url, "SYNC_REPORT_BUCKET": BUCKET,
                        "ERP_BASE_URL": erp_server.url, "SYNC_WATERMARK_LAG_SECONDS": "0"}.items():
        monkeypatch.setenv(name, value)
    container.reset()
    stream = io.StringIO()
    log_handler = logging.StreamHandler(stream)
    log_handler.setFormatter(logger.registered_formatter)
    logger.addHandler(log_handler)
    lambda_context.timeout_ms = 900_000
    salesforce.clear_requests()
    yield Sync(salesforce, sqs, dynamodb, queue_url, lambda_context, stream)
    logging.getLogger(logger.name).removeHandler(log_handler)
    container.reset()


# -- the start event -------------------------------------------------------------------------------------

BAD_STARTS = {
    "list": ["full"], "text": "incremental", "number": 42,
    "unknown-mode": {"mode": "weekly"},
    "mode-as-list": {"mode": ["full"]},
    "backfill-without-since": {"mode": "backfill"},
    "since-without-backfill": {"mode": "full", "since": "2026-01-01T00:00:00Z"},
    "naive-since": {"mode": "backfill", "since": "2026-01-01T00:00:00"},
    "impossible-since": {"mode": "backfill", "since": "2026-02-30T00:00:00Z"},
    "injection-since": {"mode": "backfill", "since": "2026-01-01T00:00:00Z' OR Name != '"},
    "trigger-as-object": {"trigger": {"by": "me"}},
    "extra-field": {"mode": "full", "dry_run": True},
    "scheduler-envelope": {"version": "0", "detail-type": "Scheduled Event", "detail": {}},
}


def test_bad_start_events_are_rejected_before_anything(sync: Sync) -> None:
    for name, event in BAD_STARTS.items():
        answer = sync_handler.start(event, sync.context)
        assert answer["status"] == "rejected", (name, answer)
        assert answer["errors"], name
        assert all(isinstance(e, str) and e.strip() for e in answer["errors"]), name
    assert len(sync.lines("start event rejected")) == len(BAD_STARTS), "a log line for each"
    assert sync.emulator.requests() == [], "nothing asked of Salesforce"
    assert sync.state_items() == 0, "no lock taken, no run created"
    assert sync.pending() == 0, "nothing queued"


@given(event=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                          lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.sampled_from(["mode", "since", "trigger", "run_id", "x"]), inner,
                                            max_size=4)).filter(lambda e: e not in (None, {}, [], "", 0, False)))
@FUZZ
def test_arbitrary_start_events_are_rejected_or_start_one_run(sync: Sync, event: Any) -> None:
    answer = sync_handler.start(event, sync.context)
    assert answer["status"] in ("rejected", "started", "skipped", "resumed"), answer
    if answer["status"] == "rejected":
        assert answer["errors"]


# -- the worker's step messages ------------------------------------------------------------------------

BAD_STEPS = ["", "{", "null", "[]", '"20260101T020000Z-1a2b3c4d"', json.dumps({"run_id": "r"}),
             json.dumps({"run_id": None, "step": 0}), json.dumps({"run_id": "r", "step": "zero"}),
             json.dumps({"run_id": "r", "step": 0, "phase": 3}), deeply_nested(5_000),
             *truncations(json.dumps({"run_id": "20260101T020000Z-1a2b3c4d", "step": 0}), 4)]


def test_unusable_step_messages_are_dropped_with_a_log_line(sync: Sync) -> None:
    response = sync.work(*BAD_STEPS)
    assert response["batchItemFailures"] == [], "a retry could never make them usable"
    dropped = sync.lines("unusable sync message dropped")
    assert sorted(line["message_id"] for line in dropped) == sorted(f"m{i}" for i in range(len(BAD_STEPS)))
    assert all(line["errors"] for line in dropped)
    assert sync.emulator.requests() == []
    assert sync.state_items() == 0


def test_steps_of_unknown_runs_claim_nothing(sync: Sync) -> None:
    bodies = [json.dumps({"run_id": "no-such-run", "step": 0}), json.dumps({"run_id": "x' OR '1'='1", "step": -1}),
              json.dumps({"run_id": "\u0000\u202e", "step": 7})]
    response = sync.work(*bodies)
    assert response["batchItemFailures"] == []
    assert len(sync.lines("duplicate or stale sync message ignored")) == len(bodies)
    assert sync.emulator.requests() == []
    assert sync.state_items() == 0


# -- SOQL: ERP customer ids and Salesforce ids from the ERP ------------------------------------------------

INJECTIONS = ["x' OR Name LIKE '%", "\\'", "\\", "%", "_", "' OR Id != '", "A\nB", "A\r\nB\t", "'; DELETE",
              "\u2019 OR \u2018a\u2019=\u2018a", "C-" + "9" * 5000, "x') OR (Id != null", "\" OR \"\"=\""]


def test_outside_ids_in_the_match_query_are_literals(sync: Sync, soql_log: QueryLog) -> None:
    """matches() is the one query built from values the ERP hands over. Every value must be a literal: the query
    finds exactly the Account holding that very value, and no other."""
    access = get_access()
    tag = uuid.uuid4().hex[:8]
    payload = f"x' OR Name LIKE '%{tag}"
    decoy = access.request("POST", "sobjects/Account", json={"Name": f"Decoy {tag}",
                                                             "ERP_Customer_Id__c": f"C-DECOY-{tag}"})["id"]
    literal = access.request("POST", "sobjects/Account", json={"Name": "Literal", "ERP_Customer_Id__c": payload})["id"]
    accounts = SalesforceAccounts(access, ["Id", "Name", "ERP_Customer_Id__c"], integration_user_id="005000000000001")
    soql_log.clear()
    # Salesforce ids must look like ids (Salesforce refuses the query otherwise): the ERP's ids are free text.
    found = accounts.matches(["001000000000000AAA"], [*INJECTIONS, payload])
    assert [row["Id"] for row in found] == [literal], "only the Account whose id is that literal text"
    assert decoy not in {row["Id"] for row in found}
    [statement] = soql_log.statements
    assert f"'x\\' OR Name LIKE \\'%{tag}'" in statement, statement  # quoted and escaped, not spliced
    assert "\n" not in statement, "line breaks are escaped, not sent raw"


# -- found by this suite, since fixed ------------------------------------------------------------------

def test_edge_of_time_backfill_is_rejected_without_taking_the_lock(sync: Sync) -> None:
    try:
        answer = sync_handler.start({"mode": "backfill", "since": "0001-01-01T00:00:00+01:00"}, sync.context)
    except OverflowError:  # what happened before the fix: Scheduler retries it, and meanwhile...
        answer = {"status": "raised"}
    lock = sync.dynamodb.get_item(TableName=TABLE, Key={"id": {"S": "customer-sync#lock"}}).get("Item")
    tonight = sync_handler.start({"mode": "incremental", "trigger": "schedule"}, sync.context)
    assert lock is None, f"the lock is held by a run that never started; tonight's run: {tonight}"
    assert answer["status"] == "rejected"
    assert any(error.startswith("since:") for error in answer["errors"]), answer
    assert tonight["status"] == "started"


@pytest.mark.parametrize("since", ["1999-12-31T23:59:59Z", "2999-01-01T00:00:00Z", "9999-12-31T23:30:00-01:00"])
def test_backfill_since_out_of_range_is_rejected(sync: Sync, since: str) -> None:
    answer = sync_handler.start({"mode": "backfill", "since": since}, sync.context)
    assert answer["status"] == "rejected", answer
    assert sync.state_items() == 0, "nothing locked or recorded"
    assert sync.pending() == 0


def test_a_start_failing_after_the_lock_releases_it(sync: Sync) -> None:
    """Whatever fails once the lock is taken (here the queue is gone), the lock goes with the error, so the next
    scheduled start is not refused for the lock's whole TTL."""
    sync.sqs.delete_queue(QueueUrl=sync.queue_url)
    with pytest.raises(StepNotQueued, match=r"(?i)queue"):
        sync_handler.start({"mode": "incremental", "trigger": "schedule"}, sync.context)
    lock = sync.dynamodb.get_item(TableName=TABLE, Key={"id": {"S": "customer-sync#lock"}}).get("Item")
    assert lock is None
    sync.sqs.create_queue(QueueName=QUEUE)
    tonight = sync_handler.start({"mode": "incremental", "trigger": "schedule"}, sync.context)
    assert tonight["status"] == "resumed", "the run recorded before the failure is picked up, not refused"
    assert sync.pending() == 1
