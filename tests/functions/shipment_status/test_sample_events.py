"""The sample events in events/ (for `sam local invoke`) are ones the publisher really applies."""

from __future__ import annotations

import json
from pathlib import Path

from shipment_status import handler as publisher

EVENTS = Path(__file__).resolve().parents[3] / "events"


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_the_eventbridge_samples_are_applied_newest_wins(publish, org):
    newer = load("shipment-status-changed.json")
    older = load("shipment-status-changed-older.json")
    number = newer["detail"]["tracking_number"]
    assert older["detail"]["tracking_number"] == number

    first = publish(newer)
    second = publish(older)

    assert first["results"] in ({"published": 1}, {"duplicate": 1})  # the session's emulator may know it
    assert second["results"] == {"stale": 1}
    assert org.shipment(number)["Status__c"] == newer["detail"]["status"]


def test_the_sqs_batch_sample_is_applied(salesforce, state_table, org, lambda_context):
    event = load("shipment-status-sqs-batch.json")
    assert publisher.sqs_handler(event, lambda_context) == {"batchItemFailures": []}
    for record in event["Records"]:
        detail = json.loads(record["body"])["detail"]
        assert org.shipment(detail["tracking_number"])["Status__c"] == detail["status"]
