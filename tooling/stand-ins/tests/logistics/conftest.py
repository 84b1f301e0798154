"""Fixtures for the carrier stand-in: moto EventBridge with the `logistics` bus and a tap queue behind a rule,
a webhook that checks the documented signature (docs/remote-call-in.md) behind the loopback API Gateway, and a
carrier server signing for it. The product's own webhook handler is tested with the carrier in
tests/functions/shipment_webhook/test_with_carrier_stand_in.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from stand_ins.logistics import LocalApiGateway, LogisticsServer, WebhookSink

SIGNING_KEY = "carrier-shared-key-0123456789"
TOLERANCE_SECONDS = 300


@dataclass
class Bus:
    sqs: Any
    tap_url: str

    def received(self) -> list[dict[str, Any]]:
        """Every EventBridge event the rule copied to the tap queue since the last call, in arrival order."""
        events = []
        while messages := self.sqs.receive_message(QueueUrl=self.tap_url, MaxNumberOfMessages=10,
                                                   AttributeNames=["SentTimestamp"]).get("Messages", []):
            for message in messages:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=message["ReceiptHandle"])
        return events


@pytest.fixture
def bus(aws: None) -> Bus:
    events = boto3.client("events")
    sqs = boto3.client("sqs")
    events.create_event_bus(Name="logistics")
    # FIFO keeps the tap in arrival order, so a test can compare the bus's deliveries with what was sent.
    tap_url = sqs.create_queue(QueueName="logistics-tap.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="shipment-status", EventBusName="logistics",
                    EventPattern=json.dumps({"detail-type": ["ShipmentStatusChanged"]}))
    events.put_targets(Rule="shipment-status", EventBusName="logistics", Targets=[
        {"Id": "tap", "Arn": tap_arn, "SqsParameters": {"MessageGroupId": "all"}}])
    return Bus(sqs, tap_url)


def fake_webhook(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A receiver written from the documented scheme, independently of the carrier's ``sign``: the signature
    over "v1:{timestamp}:" + body, a fresh timestamp, then every event onto the bus; 401 otherwise."""
    body = base64.b64decode(event["body"]) if event["isBase64Encoded"] else (event["body"] or "").encode()
    headers = {k.lower(): v for k, v in event["headers"].items()}
    timestamp = headers.get("x-signature-timestamp", "")
    expected = "v1=" + hmac.new(SIGNING_KEY.encode(), f"v1:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    if (not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS
            or not hmac.compare_digest(headers.get("x-signature", ""), expected)):
        return {"statusCode": 401, "body": json.dumps({"error": "unauthorized", "message": "bad signature"})}
    parsed = json.loads(body)
    shipments = parsed.get("events", [parsed])
    boto3.client("events").put_events(Entries=[
        {"EventBusName": "logistics", "Source": "logistics.webhook", "DetailType": "ShipmentStatusChanged",
         "Detail": json.dumps(shipment)} for shipment in shipments])
    return {"statusCode": 202, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"accepted": len(shipments)})}


@pytest.fixture
def gateway(bus: Bus) -> Iterator[LocalApiGateway]:
    """The signature-checking webhook on a loopback HTTP port, as API Gateway would front it."""
    with LocalApiGateway(fake_webhook) as gw:
        yield gw


@pytest.fixture
def carrier(gateway: LocalApiGateway) -> Iterator[LogisticsServer]:
    with LogisticsServer(WebhookSink(f"{gateway.url}/shipments/events", SIGNING_KEY)) as server:
        yield server
