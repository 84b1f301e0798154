"""Fixtures for the carrier stand-in: moto EventBridge with the `logistics` bus and a tap queue behind a
rule, the real webhook handler behind a loopback API Gateway, and a carrier server signing for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from shipment_webhook import handler as webhook

from stand_ins.logistics import LocalApiGateway, LogisticsServer, WebhookSink

SIGNING_KEY = "carrier-shared-key-0123456789"


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
def bus(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bus]:
    events = boto3.client("events")
    sqs = boto3.client("sqs")
    events.create_event_bus(Name="logistics")
    # FIFO keeps the tap in arrival order, so a test can replay the bus's deliveries in the order they came.
    tap_url = sqs.create_queue(QueueName="logistics-tap.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="shipment-status", EventBusName="logistics",
                    EventPattern=json.dumps({"detail-type": ["ShipmentStatusChanged"]}))
    events.put_targets(Rule="shipment-status", EventBusName="logistics", Targets=[
        {"Id": "tap", "Arn": tap_arn, "SqsParameters": {"MessageGroupId": "all"}}])
    secret_arn = boto3.client("secretsmanager").create_secret(Name="logistics/signing",
                                                              SecretString=SIGNING_KEY)["ARN"]
    monkeypatch.setenv("LOGISTICS_BUS_NAME", "logistics")
    monkeypatch.setenv("LOGISTICS_SIGNING_SECRET_ARN", secret_arn)
    webhook.reset()
    yield Bus(sqs, tap_url)
    webhook.reset()


@pytest.fixture
def gateway(bus: Bus) -> Iterator[LocalApiGateway]:
    """The real webhook handler on a loopback HTTP port, as API Gateway would front it."""
    with LocalApiGateway(webhook.handler) as gw:
        yield gw


@pytest.fixture
def carrier(gateway: LocalApiGateway) -> Iterator[LogisticsServer]:
    with LogisticsServer(WebhookSink(f"{gateway.url}/shipments/events", SIGNING_KEY)) as server:
        yield server
