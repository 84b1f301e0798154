"""Fixtures for the shipment webhook: moto EventBridge with the `logistics` bus, a rule that copies every
ShipmentStatusChanged event to an SQS queue (to see what reached the bus), and the signing secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from shipment_webhook import handler as webhook

from stand_ins.logistics.gateway import LocalContext, rest_proxy_event

SIGNING_KEY = "whsec-test-0123456789abcdef"
PREVIOUS_KEY = "whsec-old-fedcba9876543210"
PATH = "/shipments/events"


def signature(key: str, timestamp: int | str, body: bytes) -> str:
    """The documented scheme, computed here independently of the code under test."""
    return "v1=" + hmac.new(key.encode(), f"v1:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


def signed(body: bytes, key: str = SIGNING_KEY, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"Content-Type": "application/json", "X-Signature-Timestamp": str(ts),
            "X-Signature": signature(key, ts, body)}


def shipment(tracking_number: str = "1Z999AA10123456784", status: str = "In Transit", **extra: Any) -> dict:
    return {"tracking_number": tracking_number, "status": status, "status_time": "2025-03-02T08:15:00Z",
            "carrier": "UPS", **extra}


@dataclass
class Bus:
    sqs: Any
    tap_url: str

    def received(self) -> list[dict[str, Any]]:
        """Every event the rule delivered to the tap queue (EventBridge envelopes)."""
        events = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.tap_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def bus(aws: None, monkeypatch: pytest.MonkeyPatch) -> Bus:
    events = boto3.client("events")
    sqs = boto3.client("sqs")
    events.create_event_bus(Name="logistics")
    tap_url = sqs.create_queue(QueueName="logistics-tap")["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="shipment-status", EventBusName="logistics",
                    EventPattern=json.dumps({"detail-type": ["ShipmentStatusChanged"]}))
    events.put_targets(Rule="shipment-status", EventBusName="logistics", Targets=[{"Id": "tap", "Arn": tap_arn}])
    secret_arn = boto3.client("secretsmanager").create_secret(
        Name="logistics/webhook-signing", SecretString=json.dumps({"current": SIGNING_KEY,
                                                                   "previous": PREVIOUS_KEY}))["ARN"]
    monkeypatch.setenv("LOGISTICS_BUS_NAME", "logistics")
    monkeypatch.setenv("LOGISTICS_SIGNING_SECRET_ARN", secret_arn)
    webhook.reset()
    yield Bus(sqs, tap_url)
    webhook.reset()


Call = Callable[..., tuple[int, dict[str, Any], dict[str, str]]]


@pytest.fixture
def call(bus: Bus) -> Call:
    """POST a body to the handler as API Gateway would; returns (status, JSON body, headers)."""
    def post(body: bytes | str, headers: dict[str, str] | None = None, *, path: str = PATH,
             method: str = "POST", base64_body: bool = False) -> tuple[int, dict[str, Any], dict[str, str]]:
        raw = body.encode() if isinstance(body, str) else body
        event = rest_proxy_event(method, path, body=raw, headers=headers, base64_body=base64_body)
        result = webhook.handler(event, LocalContext())
        headers = dict(result.get("headers") or {})
        headers.update({name: values[-1] for name, values in (result.get("multiValueHeaders") or {}).items()})
        return result["statusCode"], json.loads(result["body"]), headers

    return post
