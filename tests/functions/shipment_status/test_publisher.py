"""The publisher against the Salesforce emulator (HTTPS) and moto DynamoDB: records upserted, platform
events published and received by a subscriber, out-of-order and duplicate deliveries ignored."""

from __future__ import annotations

import json

import pytest
from shipment_status import handler as publisher
from shipment_status.application import ShipmentUpdateFailed
from shipment_status.models import InvalidShipmentEvent

from .conftest import sf_calls, sf_time, status_event


def test_a_status_change_is_upserted_and_published_to_the_page(publish, org, page, tracking):
    number = tracking()

    summary = publish(status_event(number, "Picked Up", minutes=5, location="Leipzig, DE"))

    assert summary["results"] == {"published": 1}
    record = org.shipment(number)
    assert record["Status__c"] == "Picked Up"
    assert record["Status_Updated_At__c"] == sf_time(5)
    assert record["Carrier__c"] == "DHL"
    assert record["Name"] == number
    [event] = page.events(number, 1)
    assert event["Status__c"] == "Picked Up"
    assert event["Status_Time__c"] == "2025-03-02T08:05:00.000Z"
    assert event["Location__c"] == "Leipzig, DE"
    assert event["Carrier__c"] == "DHL"


def test_each_newer_status_moves_the_record_forward(publish, org, page, tracking):
    number = tracking()
    for minutes, status in enumerate(["Label Created", "Picked Up", "In Transit", "Delivered"]):
        publish(status_event(number, status, minutes=minutes * 60))

    assert org.shipment(number)["Status__c"] == "Delivered"
    assert [e["Status__c"] for e in page.events(number, 4)] == [
        "Label Created", "Picked Up", "In Transit", "Delivered"]


def test_an_older_event_arriving_after_a_newer_one_is_ignored(publish, org, page, tracking, salesforce):
    number = tracking()
    publish(status_event(number, "Out for Delivery", minutes=120))
    salesforce.clear_requests()

    summary = publish(status_event(number, "In Transit", minutes=60))
    calls = sf_calls(salesforce)

    assert summary["shipments"][0]["result"] == "stale"
    assert [m for m, _ in calls] == ["GET"]  # read, no write, no publish
    record = org.shipment(number)
    assert record["Status__c"] == "Out for Delivery"
    assert record["Status_Updated_At__c"] == sf_time(120)
    assert [e["Status__c"] for e in page.events(number, 2, timeout=1.0)] == ["Out for Delivery"]


def test_a_duplicate_delivery_writes_and_publishes_nothing(publish, org, page, tracking, salesforce):
    number = tracking()
    event = status_event(number, "In Transit", minutes=30)
    publish(event)
    salesforce.clear_requests()

    summary = publish(event)  # EventBridge delivers at least once
    calls = sf_calls(salesforce)

    assert summary["shipments"][0]["result"] == "duplicate"
    assert [m for m, _ in calls] == ["GET"]
    assert len(page.events(number, 2, timeout=1.0)) == 1


def test_a_batch_publishes_every_event_in_one_api_call(salesforce, state_table, org, page, tracking,
                                                       lambda_context):
    numbers = [tracking() for _ in range(5)]
    batch = [status_event(n, "In Transit", minutes=10) for n in numbers]
    batch.append(status_event(numbers[0], "Picked Up", minutes=1))  # older, same batch
    records = [{"messageId": f"m{i}", "body": json.dumps(e)} for i, e in enumerate(batch)]
    salesforce.clear_requests()

    response = publisher.sqs_handler({"Records": records}, lambda_context)
    calls = sf_calls(salesforce)

    assert response == {"batchItemFailures": []}
    assert calls == [("GET", calls[0][1]),  # the current records: one query
                     ("PATCH", calls[1][1]),  # one upsert of the five shipments
                     ("POST", calls[2][1])]  # one create of the five platform events
    assert calls[1][1].endswith("/composite/sobjects/Shipment__c/Tracking_Number__c")
    assert calls[2][1].endswith("/composite/sobjects")
    for number in numbers:
        assert org.shipment(number)["Status__c"] == "In Transit"
        assert [e["Status__c"] for e in page.events(number, 1)] == ["In Transit"]


def test_a_shipment_is_linked_to_its_order_and_written_without_it_when_the_order_is_unknown(
        publish, org, tracking):
    account = org.create("Account", {"Name": "Shipment Test"})
    order_number = f"WEB-{tracking()}"
    order = org.create("Order", {"AccountId": account, "EffectiveDate": "2025-03-01", "Status": "Draft",
                                 "Ecommerce_Order_Number__c": order_number})
    linked, unlinked = tracking(), tracking()

    publish(status_event(linked, "Picked Up", order_number=order_number))
    publish(status_event(unlinked, "Picked Up", order_number="WEB-NOT-IN-SALESFORCE"))

    assert org.shipment(linked)["Order__c"] == order
    record = org.shipment(unlinked)
    assert record["Status__c"] == "Picked Up"
    assert record["Order__c"] is None


def test_a_status_time_in_the_future_is_refused_so_it_cannot_block_later_updates(publish, org, tracking):
    number = tracking()
    event = status_event(number, "Delivered")
    event["detail"]["status_time"] = "2999-01-01T00:00:00Z"

    with pytest.raises(ShipmentUpdateFailed, match="status_time is in the future"):
        publish(event)

    assert org.shipment(number) is None


def test_an_invalid_event_names_every_bad_field_and_calls_nothing(publish, salesforce):
    event = status_event("1ZBAD", "Lost in space")
    event["detail"]["status_time"] = "2025-03-02T08:00:00"  # no time zone
    del event["detail"]["tracking_number"]
    salesforce.clear_requests()

    with pytest.raises(InvalidShipmentEvent) as caught:
        publish(event)

    message = str(caught.value)
    assert "detail.tracking_number: Field required" in message
    assert "detail.status: Input should be" in message
    assert "detail.status_time" in message
    assert "time zone" in message
    assert "Lost in space" not in message  # field names, never the values
    assert sf_calls(salesforce) == []


def test_the_buffered_variant_reports_only_the_messages_that_failed(salesforce, state_table, org, tracking,
                                                                    lambda_context):
    good = tracking()
    records = [{"messageId": "ok", "body": json.dumps(status_event(good, "Delivered"))},
               {"messageId": "not-json", "body": "{"},
               {"messageId": "bad-status", "body": json.dumps(status_event(tracking(), "Teleported"))}]

    response = publisher.sqs_handler({"Records": records}, lambda_context)

    assert response == {"batchItemFailures": [{"itemIdentifier": "not-json"}, {"itemIdentifier": "bad-status"}]}
    assert org.shipment(good)["Status__c"] == "Delivered"
