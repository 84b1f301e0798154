"""Pattern 5's publisher fed bad events, with moto DynamoDB (leases) and the Salesforce emulator.

Documented contract (shipment_status/application.py, docs/ui-update.md): an invalid EventBridge event makes the
handler raise ``InvalidShipmentEvent`` naming every bad field (Lambda retries it, then its on-failure
destination keeps it in the DLQ with that message), after a log line and an ``ShipmentEventsInvalid`` metric,
and without a Salesforce call; the buffered SQS variant reports such a message in ``batchItemFailures`` (the
redrive policy moves it to the DLQ) while the valid messages of its batch are applied.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from shipment_status import handler as publisher
from shipment_status.models import InvalidShipmentEvent

from salesforce_access import get_access, soql
from salesforce_access.observability import logger

from .conftest import FUZZ, OVERSIZED, deeply_nested, truncations


def envelope(detail: Any, **changes: Any) -> dict[str, Any]:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "ShipmentStatusChanged",
            "source": "logistics.webhook", "account": "123456789012", "time": "2025-03-02T08:00:01Z",
            "region": "eu-west-1", "resources": [], "detail": detail, **changes}


def detail(**changes: Any) -> dict[str, Any]:
    return {"tracking_number": f"1Z{uuid.uuid4().hex[:14].upper()}", "status": "In Transit",
            "status_time": "2025-03-02T08:15:00Z", "carrier": "UPS", **changes}


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    log_handler = logging.StreamHandler(stream)
    log_handler.setFormatter(logger.registered_formatter)
    logger.addHandler(log_handler)
    yield stream
    logging.getLogger(logger.name).removeHandler(log_handler)


@pytest.fixture
def publisher_env(salesforce: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    boto3.client("dynamodb").create_table(
        TableName="state", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    monkeypatch.setenv("STATE_TABLE_NAME", "state")
    monkeypatch.setenv("SHIPMENT_LEASE_WAIT_SECONDS", "0.3")
    publisher.reset()
    yield salesforce
    publisher.reset()


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def shipment(tracking_number: str) -> list[dict[str, Any]]:
    return list(get_access().query(soql("SELECT Id, Status__c FROM Shipment__c WHERE Tracking_Number__c = {t}",
                                        t=tracking_number.upper())))


BAD_EVENTS = {
    "empty": {},
    "not-a-dict": ["ShipmentStatusChanged"],
    "no-detail": {k: v for k, v in envelope(detail()).items() if k != "detail"},
    "detail-as-text": envelope(json.dumps(detail())),
    "other-detail-type": envelope(detail(), **{"detail-type": "OrderPlaced"}),
    "missing-fields": envelope({"carrier": "UPS"}),
    "wrong-types": envelope({"tracking_number": 42, "status": ["Delivered"], "status_time": {"at": 1}}),
    "unknown-status": envelope(detail(status="delivered")),
    "naive-time": envelope(detail(status_time="2025-03-02T08:15:00")),
    "impossible-date": envelope(detail(status_time="2025-02-30T08:15:00Z")),
    "injection-tracking": envelope(detail(tracking_number="1Z' OR Name LIKE '%")),
    "control-chars": envelope(detail(tracking_number="1Z\x00\x1b[31m")),
    "unicode-digits": envelope(detail(tracking_number="\u0661\u0662\u0663")),
    "too-long": envelope(detail(tracking_number="1" * 65, carrier="c" * 81, location="l" * 256)),
    "oversized": envelope(detail(location="x" * OVERSIZED)),
}


def test_invalid_eventbridge_events_raise_naming_the_problem(publisher_env: Any, logs: io.StringIO,
                                                             lambda_context: Any) -> None:
    for name, bad in BAD_EVENTS.items():
        before = len(publisher_env.requests())
        logs.seek(0)
        logs.truncate()
        with pytest.raises(InvalidShipmentEvent) as raised:
            publisher.handler(bad, lambda_context)
        assert raised.value.problems, f"{name}: the DLQ message names every invalid field"
        assert "x" * 100 not in str(raised.value), "values are never echoed"
        [line] = [line for line in log_lines(logs) if line["message"] == "invalid ShipmentStatusChanged event"]
        assert line["problems"] == raised.value.problems, name
        assert len(publisher_env.requests()) == before, f"{name}: no Salesforce call for an invalid event"


@given(event=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                                      max_size=4))
       | st.fixed_dictionaries({"detail-type": st.just("ShipmentStatusChanged"),
                                "detail": st.dictionaries(st.sampled_from(["tracking_number", "status", "status_time",
                                                                           "carrier", "order_number"]),
                                                          st.none() | st.integers() | st.text(max_size=30))}))
@FUZZ
def test_arbitrary_events_raise_invalid_or_are_applied(publisher_env: Any, lambda_context: Any, event: Any) -> None:
    before = len(publisher_env.requests())
    problems: list[str] = []
    try:
        publisher.handler(event, lambda_context)
    except InvalidShipmentEvent as exc:  # the documented way to refuse: Lambda retries, then the DLQ
        problems = exc.problems or ["<none named>"]
    if problems:
        assert "<none named>" not in problems
        assert len(publisher_env.requests()) == before


def test_extra_fields_are_ignored_and_the_change_applied(publisher_env: Any, lambda_context: Any) -> None:
    change = detail(unexpected={"nested": [1, 2]}, Status__c="Delivered", note="\u202e")
    result = publisher.handler(envelope(change, extra_top_level="x"), lambda_context)
    assert result["results"] == {"published": 1}
    assert shipment(change["tracking_number"])[0]["Status__c"] == "In Transit", "only `status` sets the status"


# -- the buffered SQS variant ------------------------------------------------------------------------

def sqs_batch(*bodies: str) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m{i}", "receiptHandle": f"r{i}", "body": body,
                         "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                         "md5OfBody": "", "eventSource": "aws:sqs", "awsRegion": "eu-west-1",
                         "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:shipment-status"}
                        for i, body in enumerate(bodies)]}


def test_sqs_bad_messages_fail_alone(publisher_env: Any, logs: io.StringIO, lambda_context: Any) -> None:
    good = [detail(), detail()]
    bad = ["", "{", "null", "[]", json.dumps(envelope({"status": "Delivered"})),
           *truncations(json.dumps(envelope(detail())), 5), json.dumps(BAD_EVENTS["oversized"])]
    bodies = [json.dumps(envelope(good[0])), *bad, json.dumps(envelope(good[1]))]
    response = publisher.sqs_handler(sqs_batch(*bodies), lambda_context)
    assert sorted(item["itemIdentifier"] for item in response["batchItemFailures"]) == sorted(
        f"m{i}" for i in range(1, len(bodies) - 1)), "every bad message, and only those, goes back for the DLQ"
    for change in good:
        assert shipment(change["tracking_number"]), "the valid messages of the batch are applied"
    refused = [line for line in log_lines(logs) if line["message"] == "invalid message in the shipment queue"]
    assert len(refused) == len(bad)
    assert all(line["error"] for line in refused)


@given(body=st.text(max_size=200) | st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
).map(json.dumps))
@FUZZ
def test_sqs_arbitrary_bodies_are_reported_failed(publisher_env: Any, lambda_context: Any, body: str) -> None:
    before = len(publisher_env.requests())
    response = publisher.sqs_handler(sqs_batch(body), lambda_context)
    assert response["batchItemFailures"] == [{"itemIdentifier": "m0"}]
    assert len(publisher_env.requests()) == before


# -- found by this suite, since fixed ------------------------------------------------------------------

EDGE_OF_TIME = "0001-01-01T00:00:00+01:00"  # valid ISO 8601 with a zone, but before 0001-01-01 in UTC


def test_edge_of_time_status_is_an_invalid_event(publisher_env: Any, logs: io.StringIO, lambda_context: Any) -> None:
    before = len(publisher_env.requests())
    for status_time in (EDGE_OF_TIME, "1999-12-31T23:59:59Z", "9999-12-31T23:30:00-01:00"):
        with pytest.raises(InvalidShipmentEvent) as raised:
            publisher.handler(envelope(detail(status_time=status_time)), lambda_context)
        assert [p.split(":")[0] for p in raised.value.problems] == ["detail.status_time"], raised.value.problems
    lines = [line for line in log_lines(logs) if line["message"] == "invalid ShipmentStatusChanged event"]
    assert len(lines) == 3, "each is logged as an invalid event"
    assert len(publisher_env.requests()) == before, "no Salesforce call"


@pytest.mark.parametrize("poison", [json.dumps(envelope(detail(status_time=EDGE_OF_TIME))), deeply_nested(5_000)],
                         ids=["edge-of-time", "deeply-nested"])
def test_sqs_poison_message_fails_alone(publisher_env: Any, lambda_context: Any, poison: str) -> None:
    good = detail()
    response = publisher.sqs_handler(sqs_batch(json.dumps(envelope(good)), poison), lambda_context)
    assert response["batchItemFailures"] == [{"itemIdentifier": "m1"}]
    assert shipment(good["tracking_number"]), "the valid message of the batch is applied"
