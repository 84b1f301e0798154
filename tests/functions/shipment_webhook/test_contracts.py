"""The webhook agrees with its neighbours: the event the publisher reads and EventBridge's partial failures;
and its logs never hold the signing key. (It verifies signatures with the edge kit's signatures middleware,
as POST /orders does.)"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import boto3
import pytest
from shipment_webhook.bus import BusUnavailable, LogisticsBus
from shipment_webhook.models import ShipmentStatusChanged, parse_body

from .conftest import SIGNING_KEY, shipment, signed

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("fields", [
    shipment(),
    shipment(status="Delivered", location="Leipzig, DE", order_number="WEB-1"),
    shipment(status_time="2025-03-02T09:15:00.123+01:00", carrier=None),
    shipment(tracking_number=" 1z999aa10123456784 "),
])
def test_every_event_the_webhook_accepts_is_one_the_publisher_applies(fields):
    from shipment_status.models import parse_eventbridge_event

    [accepted] = parse_body(json.dumps(fields).encode())
    envelope = {"version": "0", "id": "1", "detail-type": "ShipmentStatusChanged", "source": "logistics.webhook",
                "account": "123456789012", "time": "2025-03-02T08:15:01Z", "region": "eu-west-1",
                "resources": [], "detail": json.loads(accepted.detail())}
    change = parse_eventbridge_event(envelope)
    assert change.tracking_number == accepted.tracking_number.upper()
    assert change.status.value == accepted.status.value
    assert change.status_time == accepted.status_time


@pytest.mark.parametrize("fields", [
    {"tracking_number": "1Z1", "status": "Lost", "status_time": "2025-03-02T08:15:00Z"},
    {"tracking_number": "1Z1", "status": "Delivered", "status_time": "2025-03-02T08:15:00"},
    {"tracking_number": "1Z 1", "status": "Delivered", "status_time": "2025-03-02T08:15:00Z"},
])
def test_what_the_publisher_would_refuse_the_webhook_refuses_first(fields):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ShipmentStatusChanged.model_validate(fields)


class FlakyEvents:
    """The moto client, refusing the first entry of the first PutEvents call as EventBridge does when throttled."""

    def __init__(self, client):
        self.client = client
        self.calls: list[int] = []

    def put_events(self, Entries):
        self.calls.append(len(Entries))
        if len(self.calls) == 1:
            response = self.client.put_events(Entries=Entries[1:])
            return {"FailedEntryCount": 1, "Entries": [
                {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}, *response["Entries"]]}
        return self.client.put_events(Entries=Entries)


def test_entries_the_bus_refused_are_sent_again_alone(bus):
    flaky = FlakyEvents(boto3.client("events"))
    events = [ShipmentStatusChanged.model_validate(shipment(f"1ZFLAKY{i}")) for i in range(3)]

    ids = LogisticsBus(flaky, "logistics", sleep=lambda _: None).put(events)

    assert flaky.calls == [3, 1]
    assert len(ids) == 3
    assert sorted(e["detail"]["tracking_number"] for e in bus.received()) == ["1ZFLAKY0", "1ZFLAKY1", "1ZFLAKY2"]


def test_entries_that_never_get_through_raise(bus):
    class Refusing:
        def put_events(self, Entries):
            return {"FailedEntryCount": len(Entries),
                    "Entries": [{"ErrorCode": "InternalFailure"} for _ in Entries]}

    with pytest.raises(BusUnavailable, match="2 event"):
        LogisticsBus(Refusing(), "logistics", sleep=lambda _: None).put(
            [ShipmentStatusChanged.model_validate(shipment(f"1Z{i}")) for i in range(2)])


def test_the_signing_key_never_reaches_the_logs(call, bus, caplog):
    caplog.set_level("DEBUG")
    body = json.dumps(shipment()).encode()
    call(body, signed(body))
    call(body, signed(body, key="wrong-key-0123456789"))
    call(body, signed(body, timestamp=int(time.time()) - 999))

    text = caplog.text + json.dumps([r.__dict__.get("msg") for r in caplog.records], default=str)
    assert "request refused" in text
    assert SIGNING_KEY not in text
    assert "wrong-key-0123456789" not in text


def test_the_webhook_imports_no_salesforce_client():
    import subprocess

    code = ("import sys; sys.path[:0] = ['functions/shipment_webhook', 'layers/salesforce_access'];"
            "import shipment_webhook.handler;"
            "print(sorted(m for m in ('simple_salesforce', 'salesforce_access.access') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True, env={"AWS_DEFAULT_REGION": "eu-west-1", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"
