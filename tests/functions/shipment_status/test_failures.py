"""Failure handling: Salesforce faults, publish results of both API generations, concurrent invocations
for the same shipment, secrets kept out of logs, and a cold start without simple-salesforce."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from shipment_status import handler as publisher
from shipment_status.application import ShipmentUpdateFailed
from shipment_status.leases import DynamoDBLeases
from shipment_status.models import ShipmentStatusChange
from shipment_status.salesforce import SalesforceShipments, judge_publish
from shipment_status.service import PublishOutcomeUnknown

from salesforce_access import RecordResult, RequestLimitExceeded, ServiceUnavailable, get_access, reset_access_cache

from .conftest import sf_calls, sf_time, status_event

ROOT = Path(__file__).resolve().parents[3]


# -- publish results --------------------------------------------------------------------------------------


@pytest.mark.parametrize("errors", [
    [],  # before API 62.0
    [{"statusCode": "OPERATION_ENQUEUED", "message": "e7b4c2a0-1f1e-4b2a-9c55-2d8f3f0b9a11", "fields": []}],
])
def test_a_successful_publish_is_success_with_or_without_operation_enqueued(errors):
    outcome = judge_publish(RecordResult.model_validate({"id": "e00xx0000000001AAA", "success": True,
                                                         "errors": errors}))
    assert outcome.ok
    assert outcome.event_uuid == (errors[0]["message"] if errors else None)


def test_a_failed_publish_is_failure_and_says_why():
    outcome = judge_publish(RecordResult.model_validate({"success": False, "errors": [
        {"statusCode": "INVALID_FIELD", "message": "No such column 'Foo__c'", "fields": ["Foo__c"]}]}))
    assert not outcome.ok
    assert "INVALID_FIELD" in outcome.message


@pytest.mark.parametrize("api_version", ["59.0", "62.0"])
def test_publishing_succeeds_whichever_shape_the_org_answers(api_version, salesforce, publish, org, page, tracking,
                                                             monkeypatch):
    info = salesforce.info
    secret = {"flow": "jwt_bearer", "client_id": info["client_id"], "username": info["username"],
              "private_key": Path(info["private_key_file"]).read_text(), "login_url": info["login_url"],
              "api_version": api_version}
    arn = boto3.client("secretsmanager").create_secret(Name=f"salesforce/v{api_version}",
                                                       SecretString=json.dumps(secret))["ARN"]
    monkeypatch.setenv("SALESFORCE_SECRET_ARN", arn)
    reset_access_cache()
    number = tracking()
    salesforce.clear_requests()

    summary = publish(status_event(number, "Delivered"))

    assert summary["results"] == {"published": 1}
    assert any(f"/v{api_version}/composite/sobjects" in path for _, path in sf_calls(salesforce))
    assert [e["Status__c"] for e in page.events(number, 1)] == ["Delivered"]


# -- Salesforce faults --------------------------------------------------------------------------------------


def test_a_503_is_retried_inside_the_invocation(publish, salesforce, org, tracking):
    number = tracking()
    salesforce.inject("503", count=1, method="GET", path="/query")
    salesforce.inject("503", count=1, method="PATCH", path="Shipment__c")

    publish(status_event(number, "In Transit"))

    assert org.shipment(number)["Status__c"] == "In Transit"


def test_salesforce_down_fails_the_invocation_and_the_retry_completes_it(publish, salesforce, org, page, tracking,
                                                                          lambda_context):
    number = tracking()
    event = status_event(number, "Out for Delivery")
    salesforce.inject("503", count=50, method="GET", path="/query")
    short = type(lambda_context)(timeout_ms=7_000)  # 2 s of retry budget once the layer keeps its 5 s margin

    with pytest.raises(ServiceUnavailable):
        publish(event, short)
    salesforce.clear_faults()
    assert org.shipment(number) is None

    publish(event)  # Lambda's retry of the same event: the lease was given back, nothing blocks it

    assert org.shipment(number)["Status__c"] == "Out for Delivery"
    assert len(page.events(number, 1)) == 1


def test_an_expired_session_is_renewed_between_and_during_invocations(publish, salesforce, org, tracking):
    first, second = tracking(), tracking()
    publish(status_event(first, "Picked Up"))
    salesforce.expire_tokens()  # the warm container's token is no longer valid
    publish(status_event(first, "In Transit", minutes=10))
    salesforce.inject("INVALID_SESSION_ID", count=1, method="PATCH", path="Shipment__c")  # mid-invocation

    publish(status_event(second, "Picked Up"))

    assert org.shipment(first)["Status__c"] == "In Transit"
    assert org.shipment(second)["Status__c"] == "Picked Up"


def test_a_publish_that_fails_after_the_upsert_is_published_by_the_retry_exactly_once(
        publish, salesforce, org, page, tracking, logs):
    number = tracking()
    event = status_event(number, "Delivered", minutes=90)
    salesforce.inject("REQUEST_LIMIT_EXCEEDED", count=1, method="POST", path="composite/sobjects")

    with pytest.raises(RequestLimitExceeded):
        publish(event)
    [failed] = [json.loads(line) for line in logs.getvalue().splitlines() if "Salesforce call failed" in line]
    assert (failed["level"], failed["error"], failed["error_code"], failed["status"], failed["tracking_numbers"]) == \
        ("ERROR", "RequestLimitExceeded", "REQUEST_LIMIT_EXCEEDED", 403, [number])
    assert get_access().tokens.peek().value not in logs.getvalue()
    assert org.shipment(number)["Status__c"] == "Delivered"  # the record was written
    assert page.events(number, 1, timeout=1.0) == []  # the event was not

    salesforce.clear_requests()
    retry = publish(event)
    calls = [m for m, _ in sf_calls(salesforce)]
    again = publish(event)  # and a later duplicate delivery publishes nothing more

    assert retry["results"] == {"published": 1}
    assert calls == ["GET", "POST"]  # no second upsert, one publish
    assert again["results"] == {"duplicate": 1}
    assert [e["Status__c"] for e in page.events(number, 2, timeout=1.0)] == ["Delivered"]


def test_a_dropped_publish_fails_the_whole_sqs_batch_and_the_redelivery_publishes_each_once(
        salesforce, state_table, org, page, tracking, lambda_context, logs):
    numbers = [tracking() for _ in range(2)]
    batch = {"Records": [{"messageId": f"m{i}", "body": json.dumps(status_event(n, "Picked Up"))}
                         for i, n in enumerate(numbers)]}
    salesforce.inject("drop", count=1, method="POST", path="composite/sobjects")  # sent, no answer

    first = publisher.sqs_handler(batch, lambda_context)

    assert first == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
    unknown = [json.loads(line) for line in logs.getvalue().splitlines() if "publish outcome unknown" in line]
    assert sorted(r["dedup_key"] for r in unknown) == sorted(f"{n}|2025-03-02T08:00:00.000Z" for n in numbers)
    assert publisher.sqs_handler(batch, lambda_context) == {"batchItemFailures": []}  # SQS delivers them again
    for number in numbers:
        assert [e["Status__c"] for e in page.events(number, 2, timeout=0.5)] == ["Picked Up"]


@pytest.mark.parametrize(("status", "unknown"), [(502, True), (504, True), (503, False)])
def test_a_gateway_error_on_the_publish_is_an_unknown_outcome(status, unknown):
    # The emulator cannot answer 502/504, so the layer's Collections are played by a class raising what the layer
    # raises for them (a create is not replayed after a gateway error).
    class Access:
        class collections:  # shaped like the layer's attribute
            @staticmethod
            def create(sobject: str, records: list) -> list:
                raise ServiceUnavailable("unavailable", status=status, method="POST", url="https://x/sobjects")

    change = ShipmentStatusChange(tracking_number="1Z1", status="Delivered", status_time="2025-03-02T08:00:00Z")
    expected = PublishOutcomeUnknown if unknown else ServiceUnavailable  # a 503 was refused: known not published
    with pytest.raises(expected):
        SalesforceShipments(Access()).publish([change])


def test_a_record_refused_by_salesforce_fails_with_its_error_code(publish, salesforce, tracking):
    event = status_event(tracking(), "Picked Up", carrier="C" * 81)  # longer than Carrier__c allows
    # The model refuses it before Salesforce does: a clear error, no API call.
    salesforce.clear_requests()
    with pytest.raises(Exception, match="carrier"):
        publish(event)
    assert sf_calls(salesforce) == []


# -- concurrent invocations ---------------------------------------------------------------------------------


def _hold_lease(number: str, owner: str, seconds: float) -> None:
    boto3.client("dynamodb").put_item(TableName="state", Item={
        "id": {"S": f"shipment-status#{number}"}, "lease_owner": {"S": owner},
        "lease_expires": {"N": str(time.time() + seconds)}})


def test_a_shipment_being_updated_by_another_invocation_is_retried_later(publish, org, tracking):
    number = tracking()
    _hold_lease(number, "another-invocation", seconds=60)

    with pytest.raises(ShipmentUpdateFailed, match="busy"):
        publish(status_event(number, "In Transit"))
    assert org.shipment(number) is None


class FakeTime:
    """The leases' clock and sleep: sleeping moves the clock, and `on_sleep` plays what happens meanwhile."""

    def __init__(self, on_sleep=lambda slept: None):
        self.now, self.slept, self.on_sleep = 1_000.0, [], on_sleep

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.on_sleep(self.slept)


def _leases(clock: FakeTime, wait_seconds: float) -> DynamoDBLeases:
    return DynamoDBLeases(boto3.client("dynamodb"), "state", owner="me", lease_seconds=30,
                          wait_seconds=wait_seconds, clock=lambda: clock.now, sleep=clock.sleep)


def test_a_held_lease_is_asked_for_again_with_backoff_until_the_wait_is_over(state_table, tracking):
    number = tracking()
    _hold_lease(number, "another-invocation", seconds=10**6)  # the fake clock stays far below its expiry
    clock = FakeTime()

    assert _leases(clock, wait_seconds=1.0).acquire([number]) == {}
    assert clock.slept == [0.05, 0.1, 0.2, 0.4]  # the next 0.8 s would end after the wait: given up


def test_a_lease_given_back_during_the_wait_is_taken(state_table, tracking):
    number, free = tracking(), tracking()
    _hold_lease(number, "another-invocation", seconds=10**6)

    def holder_finishes(slept: list[float]) -> None:
        if len(slept) == 2:
            boto3.client("dynamodb").delete_item(TableName="state", Key={"id": {"S": f"shipment-status#{number}"}})

    clock = FakeTime(holder_finishes)
    held = _leases(clock, wait_seconds=3.0).acquire([number, free])

    assert sorted(held) == sorted([number, free])
    assert clock.slept == [0.05, 0.1]


def test_the_lease_of_a_crashed_invocation_expires(publish, org, tracking):
    number = tracking()
    _hold_lease(number, "crashed-invocation", seconds=-1)

    publish(status_event(number, "In Transit"))

    assert org.shipment(number)["Status__c"] == "In Transit"


def test_two_concurrent_invocations_never_leave_the_older_status(publish, org, tracking, monkeypatch):
    # Without the lease: the older change reads the record, the newer one reads and writes, then the older
    # one's write lands last and moves the shipment back. Here the older one's write is held until the newer
    # one has been refused the lease at least once, so the two really overlap (no sleep decides it).
    monkeypatch.setenv("SHIPMENT_LEASE_WAIT_SECONDS", "5")
    number = tracking()
    older_writing, newer_refused = threading.Event(), threading.Event()
    upsert, try_lease = SalesforceShipments.upsert, DynamoDBLeases._try

    def held_upsert(self, writes):
        if any(w.change is not None and w.change.status.value == "In Transit" for w in writes):
            older_writing.set()
            assert newer_refused.wait(10), "the newer invocation never asked for the lease"
        return upsert(self, writes)

    def watched_try(self, tracking_number):
        lease = try_lease(self, tracking_number)
        if lease is None and older_writing.is_set():
            newer_refused.set()
        return lease

    monkeypatch.setattr(SalesforceShipments, "upsert", held_upsert)
    monkeypatch.setattr(DynamoDBLeases, "_try", watched_try)
    results: dict[str, object] = {}

    def run(name: str, event: dict) -> None:
        try:
            results[name] = publish(event)
        except Exception as exc:
            results[name] = exc

    older = threading.Thread(target=run, args=("older", status_event(number, "In Transit", minutes=10)))
    newer = threading.Thread(target=run, args=("newer", status_event(number, "Delivered", minutes=20)))
    older.start()
    assert older_writing.wait(10), "the older invocation never reached its write"
    newer.start()
    older.join(15)
    newer.join(15)

    assert newer_refused.is_set()
    assert results["older"]["results"] == {"published": 1}, results
    assert results["newer"]["results"] == {"published": 1}, results
    record = org.shipment(number)
    assert record["Status__c"] == "Delivered"
    assert record["Status_Updated_At__c"] == sf_time(20)


# -- secrets and cold start ---------------------------------------------------------------------------------


def test_no_token_or_key_reaches_the_logs(publish, salesforce, tracking, logs, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    publish(status_event(tracking(), "Picked Up"))
    salesforce.expire_tokens()
    publish(status_event(tracking(), "Picked Up"))

    text = logs.getvalue()
    token = get_access().tokens.peek()
    assert token is not None
    assert token.value not in text
    key_lines = [line for line in Path(salesforce.info["private_key_file"]).read_text().splitlines()
                 if line and not line.startswith("-----")]
    assert not any(line in text for line in key_lines)
    assert "shipment change published" in text  # the logs were captured


def test_the_handler_imports_without_simple_salesforce():
    code = ("import sys; sys.path[:0] = ['functions/shipment_status', 'layers/salesforce_access'];"
            "import shipment_status.handler; print('simple_salesforce' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True, env={"AWS_DEFAULT_REGION": "eu-west-1", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "False"
