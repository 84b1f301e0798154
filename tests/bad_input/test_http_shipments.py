"""Pattern 5's webhook fuzzed from docs/api/shipments-openapi.yaml, with moto EventBridge: every generated body
signed validly (so validation is reached), then generated signature headers refused. Every answer: no 5xx, JSON
``{error, message}``, no stack trace; a refused request puts nothing on the bus, an accepted one every event."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import schemathesis
from hypothesis import event, example, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from shipment_webhook import handler as webhook

from .conftest import FEW, FUZZ, assert_clean_error, deeply_nested, proxy_event, wire

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "api" / "shipments-openapi.yaml")
POST_EVENTS = SCHEMA["/shipments/events"]["POST"]
SIGNING_KEY = "whsec-fuzz-logistics-5c0e9d1a"
PATH = "/shipments/events"


def signed(body: bytes) -> dict[str, str]:
    """The documented scheme, computed independently of the code under test."""
    ts = str(int(time.time()))
    return {"X-Signature-Timestamp": ts,
            "X-Signature": "v1=" + hmac.new(SIGNING_KEY.encode(), f"v1:{ts}:".encode() + body,
                                            hashlib.sha256).hexdigest()}


@dataclass
class Webhook:
    sqs: Any
    tap_url: str
    context_factory: Any

    def post(self, body: bytes, headers: dict[str, str] | None = None, *, sign: bool = True,
             path: str = PATH, binary: bool = False) -> dict[str, Any]:
        sent = {"Content-Type": "application/json", **(headers or {}), **(signed(body) if sign else {})}
        return webhook.handler(proxy_event("POST", path, headers=sent, body=body, binary=binary),
                               self.context_factory())

    def on_the_bus(self) -> list[dict[str, Any]]:
        """Events the bus delivered to the tap queue since the last call."""
        found = []
        while messages := self.sqs.receive_message(QueueUrl=self.tap_url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=message["ReceiptHandle"])
        return found


@pytest.fixture
def shipments(aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> Iterator[Webhook]:
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name="logistics")
    tap_url = sqs.create_queue(QueueName="logistics-tap")["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName="logistics", EventPattern=json.dumps({"source": ["logistics.webhook"]}))
    events.put_targets(Rule="all", EventBusName="logistics", Targets=[{"Id": "tap", "Arn": tap_arn}])
    secret_arn = boto3.client("secretsmanager").create_secret(
        Name="logistics/signing", SecretString=json.dumps({"current": SIGNING_KEY}))["ARN"]
    monkeypatch.setenv("LOGISTICS_BUS_NAME", "logistics")
    monkeypatch.setenv("LOGISTICS_SIGNING_SECRET_ARN", secret_arn)
    webhook.reset()
    yield Webhook(sqs, tap_url, type(lambda_context))
    webhook.reset()


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@given(case=st.one_of(POST_EVENTS.as_strategy(GenerationMode.POSITIVE),
                      POST_EVENTS.as_strategy(GenerationMode.NEGATIVE)))
@FUZZ
def test_post_events_fuzzed_and_signed(shipments: Webhook, case: Any) -> None:
    body = wire(case).body or b""
    status, answer = assert_clean_error(shipments.post(body), code_keys=("error",))
    event(f"status {status}")
    delivered = shipments.on_the_bus()
    if not _utf8(body):  # API Gateway hands the body over as text: the signature over the raw bytes fails
        assert status == 401, answer
        return
    assert status in (202, 400, 413), answer
    if status == 202:
        sent = json.loads(body)
        sent = sent["events"] if isinstance(sent, dict) and "events" in sent else [sent]
        assert answer["accepted"] == len(sent) == len(delivered)
        assert sorted(e["detail"]["tracking_number"] for e in delivered) == sorted(
            s["tracking_number"].strip() for s in sent)
    else:
        assert delivered == [], "a refused request puts nothing on the bus"
        if status == 400:
            assert answer["error"] == "invalid_request"
            assert answer.get("fields"), answer


@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
@example(raw=b"")
@example(raw=b"[]")
@example(raw=b'{"events": []}')
@example(raw=b'{"events": [{"tracking_number": "1Z9", "status": "Delivered"')  # truncated
@example(raw=b'{"tracking_number": "1Z9", "status": "Delivered", "status_time": "2025-03-02T08:15:00"}')  # no zone
@example(raw=b'{"tracking_number": "1Z9\\u0000", "status": "Delivered", "status_time": "2025-03-02T08:15:00Z"}')
@example(raw=b'{"tracking_number": "1Z9", "status": "delivered", "status_time": "2025-03-02T08:15:00Z"}')
@example(raw=b'{"tracking_number": 19, "status": ["Delivered"], "status_time": 1740903300}')
@example(raw=json.dumps({"events": [{"tracking_number": f"T{i}", "status": "Delivered",
                                     "status_time": "2025-03-02T08:15:00Z"} for i in range(51)]}).encode())
@FUZZ
def test_garbage_bodies_signed(shipments: Webhook, raw: bytes) -> None:
    status, answer = assert_clean_error(shipments.post(raw), code_keys=("error",))
    assert status == (400 if _utf8(raw) else 401), answer
    assert shipments.on_the_bus() == []


def test_oversized_body_is_413(shipments: Webhook) -> None:
    huge = json.dumps({"tracking_number": "1Z9", "status": "Delivered", "status_time": "2025-03-02T08:15:00Z",
                       "location": "x" * (300 * 1024)}).encode()
    status, answer = assert_clean_error(shipments.post(huge), code_keys=("error",))
    assert status == 413, answer
    assert answer["error"] == "payload_too_large"
    assert shipments.on_the_bus() == []


@given(case=st.one_of(POST_EVENTS.as_strategy(GenerationMode.POSITIVE),
                      POST_EVENTS.as_strategy(GenerationMode.NEGATIVE)))
@FEW
def test_generated_signatures_are_refused(shipments: Webhook, case: Any) -> None:
    request = wire(case)
    headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-signature")}
    status, answer = assert_clean_error(shipments.post(request.body or b"{}", headers, sign=False),
                                        code_keys=("error",))
    assert status == 401, answer
    assert answer["error"] == "unauthorized"
    assert SIGNING_KEY not in json.dumps(answer)
    assert shipments.on_the_bus() == []


def test_other_routes_answer_json(shipments: Webhook) -> None:
    for method, path in [("GET", PATH), ("POST", "/shipments"), ("PUT", PATH)]:
        response = webhook.handler(proxy_event(method, path, body=b"{}"), shipments.context_factory())
        status, answer = assert_clean_error(response, code_keys=("error",))
        assert status in (404, 405), (method, path, answer)


# -- found by this suite, since fixed ------------------------------------------------------------------

def test_deeply_nested_body_is_a_400(shipments: Webhook) -> None:
    status, answer = assert_clean_error(shipments.post(deeply_nested(5_000).encode()), code_keys=("error",))
    assert status == 400, answer
    assert answer["error"] == "invalid_request", answer
    assert shipments.on_the_bus() == []


def test_status_time_outside_utc_range_is_a_400(shipments: Webhook) -> None:
    body = json.dumps({"tracking_number": "1Z9", "status": "Delivered",
                       "status_time": "0001-01-01T00:00:00+01:00"}).encode()
    status, answer = assert_clean_error(shipments.post(body), code_keys=("error",))
    assert status == 400, answer
    assert [field["field"] for field in answer["fields"]] == ["status_time"], answer
    assert shipments.on_the_bus() == []
