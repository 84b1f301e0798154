"""The webhook handler with the carrier stand-in (stand_ins.logistics) in front of it: what the carrier signs is
accepted, each signature fault is refused with nothing on the bus, and the whole UI Update chain with nothing
stubbed (carrier -> signed HTTP -> webhook -> moto EventBridge -> publisher -> the Salesforce emulator -> CometD).

Moved here from the stand-ins' own tests, which no longer import product code."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from shipment_status import handler as publisher
from shipment_webhook import handler as webhook

from salesforce_access import soql
from salesforce_emulator import EventSubscriber
from salesforce_emulator.connection import fetch_token, https_session
from stand_ins.logistics import JOURNEY, LocalApiGateway, LogisticsServer, WebhookSink, arrange, journey

CARRIER_KEY = "carrier-shared-key-0123456789"


@dataclass
class OrderedBus:
    sqs: Any
    tap_url: str

    def received(self) -> list[dict[str, Any]]:
        """Every EventBridge event the rule copied to the FIFO tap since the last call, in arrival order."""
        events = []
        while messages := self.sqs.receive_message(QueueUrl=self.tap_url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=message["ReceiptHandle"])
        return events


@pytest.fixture
def ordered_bus(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[OrderedBus]:
    events = boto3.client("events")
    sqs = boto3.client("sqs")
    events.create_event_bus(Name="logistics")
    # FIFO keeps the tap in arrival order, so a test can replay the bus's deliveries in the order they came.
    tap_url = sqs.create_queue(QueueName="carrier-tap.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="shipment-status", EventBusName="logistics",
                    EventPattern=json.dumps({"detail-type": ["ShipmentStatusChanged"]}))
    events.put_targets(Rule="shipment-status", EventBusName="logistics", Targets=[
        {"Id": "tap", "Arn": tap_arn, "SqsParameters": {"MessageGroupId": "all"}}])
    secret_arn = boto3.client("secretsmanager").create_secret(
        Name="logistics/carrier-signing", SecretString=json.dumps({"current": CARRIER_KEY}))["ARN"]
    monkeypatch.setenv("LOGISTICS_BUS_NAME", "logistics")
    monkeypatch.setenv("LOGISTICS_SIGNING_SECRET_ARN", secret_arn)
    webhook.reset()
    yield OrderedBus(sqs, tap_url)
    webhook.reset()


@pytest.fixture
def carrier(ordered_bus: OrderedBus) -> Iterator[LogisticsServer]:
    """The real webhook handler behind the loopback API Gateway, and a carrier signing for it."""
    with LocalApiGateway(webhook.handler) as gateway, \
            LogisticsServer(WebhookSink(f"{gateway.url}/shipments/events", CARRIER_KEY)) as server:
        yield server


def test_the_webhook_accepts_what_the_carrier_signs(carrier: LogisticsServer, ordered_bus: OrderedBus) -> None:
    carrier.carrier.ship(journey("1ZSIGNED"))
    assert [d["status"] for d in carrier.deliveries()] == [202] * 5
    assert [e["detail"]["status"] for e in ordered_bus.received()] == list(JOURNEY)


@pytest.mark.parametrize("fault", ["missing_signature", "bad_signature", "stale_timestamp", "tampered_body"])
def test_each_signature_fault_is_refused_and_nothing_reaches_the_bus(carrier: LogisticsServer,
                                                                    ordered_bus: OrderedBus, fault: str) -> None:
    carrier.inject(fault)
    carrier.carrier.ship(journey("1ZFAULT", statuses=["Picked Up", "In Transit"]))
    first, second = carrier.deliveries()
    assert (first["fault"], first["status"], first["answer"]["error"]) == (fault, 401, "unauthorized")
    assert (second["status"], second["fault"]) == (202, None)
    assert [e["detail"]["status"] for e in ordered_bus.received()] == ["In Transit"]


def test_a_batch_goes_in_one_signed_request(carrier: LogisticsServer, ordered_bus: OrderedBus) -> None:
    carrier.carrier.ship(journey("1ZBATCH"), batch_size=5)
    [delivery] = carrier.deliveries()
    assert delivery["answer"]["accepted"] == 5
    assert len(ordered_bus.received()) == 5


@pytest.fixture
def state_table(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("dynamodb").create_table(
        TableName="state", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    monkeypatch.setenv("STATE_TABLE_NAME", "state")
    publisher.reset()


def test_a_shuffled_journey_with_duplicates_ends_delivered_live_and_after_a_reload(
        salesforce, state_table, carrier, ordered_bus, lambda_context):
    info = salesforce.info
    session = https_session(info)
    token = fetch_token(info, session)
    page = EventSubscriber(info["instance_url"], token, info["ca_bundle"], "/event/Shipment_Status__e",
                           api_version=info["api_version"])
    page.subscribe()
    number = f"1ZE2E{int(time.time() * 1000) % 10**9}"
    events = arrange(journey(number), "shuffle", seed=11, duplicates=2)
    assert events[0]["status"] != "Label Created"  # the seed really delivers out of order

    carrier.carrier.ship(events)
    delivered = ordered_bus.received()
    results = [publisher.handler(event, type(lambda_context)())["shipments"][0]["result"] for event in delivered]

    assert len(delivered) == len(events)  # every send reached the bus
    assert "stale" in results  # out-of-order events arrived after newer ones...
    assert set(results) <= {"published", "stale", "duplicate"}
    assert results.count("published") <= len(JOURNEY)
    record = session.get(f"{info['instance_url']}/services/data/v{info['api_version']}/query", timeout=10,
                         headers={"Authorization": f"Bearer {token}"}, params={"q": soql(
                             "SELECT Status__c, Status_Updated_At__c FROM Shipment__c "
                             "WHERE Tracking_Number__c = {n}", n=number)}).json()["records"][0]
    assert record["Status__c"] == "Delivered"  # ...and never moved the shipment back
    live: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (not live or live[-1] != "Delivered"):
        live += [m["data"]["payload"]["Status__c"] for m in page.poll(timeout=0.5)
                 if m["data"]["payload"]["Tracking_Number__c"] == number]
    page.close()
    assert live[-1] == "Delivered"  # what the page shows last is the true status
    times = [JOURNEY.index(status) for status in live]
    assert times == sorted(times)  # the page never saw the shipment go backwards
