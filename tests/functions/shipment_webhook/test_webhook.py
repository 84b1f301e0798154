"""POST /shipments/events through the real handler and moto EventBridge: what a signed request puts on the
bus, and what every unsigned, stale, tampered or invalid request is refused with (nothing reaches the bus)."""

from __future__ import annotations

import json
import time

import pytest
from shipment_webhook import application

from .conftest import PREVIOUS_KEY, SIGNING_KEY, shipment, signature, signed


def test_a_signed_event_is_put_on_the_logistics_bus(call, bus):
    body = json.dumps(shipment(location="Leipzig, DE", order_number="WEB-1001")).encode()

    status, reply, _ = call(body, signed(body))

    assert status == 202
    assert reply["accepted"] == 1
    [event] = bus.received()
    assert event["id"] == reply["event_ids"][0]
    assert event["detail-type"] == "ShipmentStatusChanged"
    assert event["source"] == "logistics.webhook"
    assert event["detail"] == {"tracking_number": "1Z999AA10123456784", "status": "In Transit",
                               "status_time": "2025-03-02T08:15:00Z", "carrier": "UPS",
                               "location": "Leipzig, DE", "order_number": "WEB-1001"}


def test_a_batch_larger_than_one_putevents_call_is_accepted_whole(call, bus):
    body = json.dumps({"events": [shipment(f"1ZBATCH{i:04d}") for i in range(23)]}).encode()

    status, reply, _ = call(body, signed(body))

    assert status == 202
    assert reply["accepted"] == 23
    received = bus.received()
    assert sorted(e["detail"]["tracking_number"] for e in received) == [f"1ZBATCH{i:04d}" for i in range(23)]


def test_the_previous_key_still_works_during_a_rotation(call, bus):
    body = json.dumps(shipment()).encode()
    assert call(body, signed(body, key=PREVIOUS_KEY))[0] == 202


def test_a_base64_encoded_body_is_verified_on_its_bytes(call, bus):
    body = json.dumps(shipment(location="Zürich")).encode()
    assert call(body, signed(body), base64_body=True)[0] == 202
    assert bus.received()[0]["detail"]["location"] == "Zürich"


@pytest.mark.parametrize(("drop", "named"), [
    (["X-Signature"], "X-Signature"),
    (["X-Signature-Timestamp"], "X-Signature-Timestamp"),
    (["X-Signature", "X-Signature-Timestamp"], "X-Signature-Timestamp and X-Signature"),
])
def test_a_missing_signature_header_is_refused(call, bus, drop, named):
    body = json.dumps(shipment()).encode()
    headers = {k: v for k, v in signed(body).items() if k not in drop}

    status, reply, response_headers = call(body, headers)

    assert status == 401
    assert reply["error"] == "unauthorized"
    assert named in reply["message"]
    assert "X-Signature" in response_headers["WWW-Authenticate"]
    assert bus.received() == []


def test_a_tampered_body_is_refused(call, bus):
    body = json.dumps(shipment(status="In Transit")).encode()
    headers = signed(body)
    tampered = body.replace(b"In Transit", b"Delivered")

    status, reply, _ = call(tampered, headers)

    assert (status, reply["message"]) == (401, "signature does not match")
    assert bus.received() == []


def test_a_signature_made_with_another_key_is_refused(call, bus):
    body = json.dumps(shipment()).encode()
    assert call(body, signed(body, key="not-the-shared-secret-at-all"))[0] == 401


@pytest.mark.parametrize("age", [310, -310, 3600])
def test_a_stale_or_future_timestamp_is_refused_even_with_a_valid_signature(call, bus, age):
    body = json.dumps(shipment()).encode()

    status, reply, _ = call(body, signed(body, timestamp=int(time.time()) - age))

    assert status == 401
    assert "window" in reply["message"]
    assert bus.received() == []


def test_a_replayed_request_is_refused_once_its_window_has_passed(call, bus, monkeypatch):
    body = json.dumps(shipment()).encode()
    headers = signed(body)
    assert call(body, headers)[0] == 202
    bus.received()

    later = time.time() + 301
    # the captured request, sent again six minutes later: the receiver's clock has moved on
    monkeypatch.setattr(application.signed_requests, "clock", lambda: later)
    status, _, _ = call(body, headers)

    assert status == 401
    assert bus.received() == []


def test_a_timestamp_that_is_not_unix_seconds_is_refused(call, bus):
    body = json.dumps(shipment()).encode()
    headers = {"X-Signature-Timestamp": "2025-03-02T08:15:00Z",
               "X-Signature": signature(SIGNING_KEY, "2025-03-02T08:15:00Z", body)}
    assert call(body, headers)[0] == 401


def test_an_invalid_body_lists_every_invalid_field_and_puts_nothing(call, bus):
    body = json.dumps({"events": [
        shipment(),
        {"tracking_number": "", "status": "Teleported", "status_time": "2025-03-02T08:15:00"},
        shipment(carrier="C" * 81),
    ]}).encode()

    status, reply, _ = call(body, signed(body))

    assert status == 400
    assert reply["error"] == "invalid_request"
    fields = {(f["field"], f["message"].split(" ")[0]) for f in reply["fields"]}
    assert {f for f, _ in fields} == {"events[1].tracking_number", "events[1].status", "events[1].status_time",
                                      "events[2].carrier"}
    assert "Teleported" not in json.dumps(reply)
    assert bus.received() == []  # not even the valid first event


@pytest.mark.parametrize("body", [b"", b"{not json", b"[]", b'"text"', b'{"events": []}'])
def test_a_body_that_is_not_an_event_is_a_400(call, bus, body):
    status, reply, _ = call(body, signed(body))
    assert status == 400
    assert reply["fields"]


def test_a_body_over_256_kib_is_refused_before_anything_else(call, bus):
    body = b"x" * (256 * 1024 + 1)
    status, reply, _ = call(body, {})
    assert (status, reply["error"]) == (413, "payload_too_large")


def test_when_the_bus_refuses_the_caller_is_told_to_retry(call, bus, monkeypatch):
    monkeypatch.setenv("LOGISTICS_BUS_NAME", "no-such-bus")
    body = json.dumps(shipment()).encode()

    status, reply, headers = call(body, signed(body))

    assert status == 503
    assert reply["error"] == "unavailable"
    assert "send the request again" in reply["message"]
    assert headers["Retry-After"] == "30"


def test_an_unreadable_signing_secret_is_a_503_not_a_stack_trace(call, bus, monkeypatch):
    monkeypatch.setenv("LOGISTICS_SIGNING_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gone")
    body = json.dumps(shipment()).encode()

    status, reply, headers = call(body, signed(body))

    assert status == 503
    assert "Traceback" not in json.dumps(reply)
    assert headers["Retry-After"] == "30"


def test_another_route_is_a_json_404(call, bus):
    status, reply, _ = call(b"{}", {}, path="/shipments", method="GET")
    assert (status, reply["error"]) == (404, "not_found")


def test_a_signed_body_that_is_not_json_is_a_415_and_puts_nothing(call, bus):
    body = json.dumps(shipment()).encode()
    status, reply, _ = call(body, {**signed(body), "Content-Type": "application/x-www-form-urlencoded"})
    assert (status, reply["error"]) == (415, "unsupported_media_type")
    assert bus.received() == []


def test_an_unsigned_body_that_is_not_json_is_a_401_first(call, bus):
    status, reply, headers = call(b"a=b", {"Content-Type": "text/plain"})
    assert (status, reply["error"]) == (401, "unauthorized")
    assert "WWW-Authenticate" in headers


def test_missing_settings_are_a_json_500_with_a_reference(call, bus, monkeypatch):
    monkeypatch.delenv("LOGISTICS_BUS_NAME")
    body = json.dumps(shipment()).encode()
    status, reply, _ = call(body, signed(body))
    assert (status, reply["error"]) == (500, "configuration_error")
    assert reply["reference"]
    assert "LOGISTICS_BUS_NAME" not in json.dumps(reply)
