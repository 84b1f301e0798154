"""The whole UI Update chain with nothing stubbed: a carrier reporting a journey out of order and with
duplicates -> signed HTTP -> the webhook handler -> moto EventBridge (`logistics` bus, rule) -> the publisher
handler, invoked with each event the rule delivered -> the Salesforce emulator -> a CometD subscriber."""

from __future__ import annotations

import time

import boto3
import pytest
from shipment_status import handler as publisher

from salesforce_access import soql
from salesforce_emulator.connection import fetch_token, https_session
from salesforce_emulator.subscriber import EventSubscriber
from stand_ins.logistics import JOURNEY, arrange, journey


@pytest.fixture
def state_table(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("dynamodb").create_table(
        TableName="state", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    monkeypatch.setenv("STATE_TABLE_NAME", "state")
    publisher._dynamodb.cache_clear()


def test_a_shuffled_journey_with_duplicates_ends_delivered_live_and_after_a_reload(
        salesforce, state_table, carrier, bus, lambda_context):
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
    delivered = bus.received()
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
    live = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (not live or live[-1] != "Delivered"):
        live += [m["data"]["payload"]["Status__c"] for m in page.poll(timeout=0.5)
                 if m["data"]["payload"]["Tracking_Number__c"] == number]
    page.close()
    assert live[-1] == "Delivered"  # what the page shows last is the true status
    times = [JOURNEY.index(status) for status in live]
    assert times == sorted(times)  # the page never saw the shipment go backwards
