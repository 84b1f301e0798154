"""The order link (Shipment__c.Order__c) is a fact, not a status: whichever event carried the order number, in
whatever order the events arrive, the shipment ends linked to its order. An older status is still not written
(the page never goes backwards) and not published, but the link it carries is, for one write and no publish;
the common path keeps its three calls. An order number that differs from the one the shipment is linked to is
logged and the link kept (docs/ui-update.md, "The order link")."""

from __future__ import annotations

import json
from typing import Any

import pytest
from shipment_status import handler as publisher

from salesforce_access import ServiceUnavailable

from .conftest import Org, sf_calls, sf_time, status_event


def new_order(org: Org, tracking: Any) -> tuple[str, str]:
    """An Order in the org: (its Id, its Ecommerce_Order_Number__c)."""
    account = org.create("Account", {"Name": "Order Link Test"})
    number = f"WEB-{tracking()}"
    order = org.create("Order", {"AccountId": account, "EffectiveDate": "2025-03-01", "Status": "Draft",
                                 "Ecommerce_Order_Number__c": number})
    return order, number


def methods(salesforce: Any) -> list[str]:
    return [m for m, _ in sf_calls(salesforce)]


def log_lines(logs: Any, message: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, logs.getvalue().splitlines()) if r["message"].startswith(message)]


# -- one event per invocation (EventBridge) -------------------------------------------------------------------


def test_an_older_event_with_the_order_after_a_newer_one_without_it_links_the_shipment(
        publish, org, page, tracking, salesforce):
    # The defect of issue 16: the older event was dropped as stale together with its order number.
    order, order_number = new_order(org, tracking)
    number = tracking()
    publish(status_event(number, "Out for Delivery", minutes=120))
    salesforce.clear_requests()

    summary = publish(status_event(number, "In Transit", minutes=60, order_number=order_number))

    assert summary["results"] == {"linked": 1}
    assert methods(salesforce) == ["GET", "PATCH"]  # the read, the link; no publish of an older status
    record = org.shipment(number)
    assert record["Order__c"] == order
    assert (record["Status__c"], record["Status_Updated_At__c"]) == ("Out for Delivery", sf_time(120))
    assert [e["Status__c"] for e in page.events(number, 2, timeout=1.0)] == ["Out for Delivery"]


def test_a_newer_event_without_the_order_keeps_the_link_an_older_one_made(publish, org, page, tracking):
    order, order_number = new_order(org, tracking)
    number = tracking()
    publish(status_event(number, "Picked Up", minutes=10, order_number=order_number))

    summary = publish(status_event(number, "Delivered", minutes=90))

    assert summary["results"] == {"published": 1}
    record = org.shipment(number)
    assert (record["Status__c"], record["Order__c"]) == ("Delivered", order)
    [_, delivered] = page.events(number, 2)
    assert delivered["Order_Number__c"] == order_number  # the page learns the order from the shipment


def test_a_duplicate_delivered_after_its_order_reached_salesforce_links_the_shipment(publish, org, page, tracking,
                                                                                      salesforce):
    number = tracking()
    order_number = f"WEB-{tracking()}"
    event = status_event(number, "Picked Up", minutes=5, order_number=order_number)
    publish(event)  # the order is not in Salesforce yet: the shipment is written without the link
    assert org.shipment(number)["Order__c"] is None
    account = org.create("Account", {"Name": "Order Link Test"})
    order = org.create("Order", {"AccountId": account, "EffectiveDate": "2025-03-01", "Status": "Draft",
                                 "Ecommerce_Order_Number__c": order_number})
    salesforce.clear_requests()

    summary = publish(event)  # EventBridge delivers it again

    assert summary["results"] == {"linked": 1}
    assert methods(salesforce) == ["GET", "PATCH"]
    assert org.shipment(number)["Order__c"] == order
    assert len(page.events(number, 2, timeout=1.0)) == 1  # published once, by the first delivery


def test_a_stale_event_whose_order_is_already_linked_costs_only_the_read(publish, org, tracking, salesforce):
    order, order_number = new_order(org, tracking)
    number = tracking()
    publish(status_event(number, "Delivered", minutes=90, order_number=order_number))
    salesforce.clear_requests()

    summary = publish(status_event(number, "In Transit", minutes=30, order_number=order_number))

    assert summary["results"] == {"stale": 1}
    assert methods(salesforce) == ["GET"]
    assert org.shipment(number)["Order__c"] == order


def test_a_newer_event_on_a_linked_shipment_keeps_three_calls(publish, org, tracking, salesforce):
    order, order_number = new_order(org, tracking)
    number = tracking()
    publish(status_event(number, "Picked Up", minutes=10, order_number=order_number))
    salesforce.clear_requests()

    publish(status_event(number, "In Transit", minutes=20, order_number=order_number))
    publish(status_event(number, "Delivered", minutes=30))

    assert methods(salesforce) == ["GET", "PATCH", "POST"] * 2
    assert org.shipment(number)["Order__c"] == order


def test_a_stale_event_whose_order_is_not_in_salesforce_stays_stale_after_one_write(publish, org, tracking,
                                                                                     salesforce):
    number = tracking()
    publish(status_event(number, "Delivered", minutes=90))
    salesforce.clear_requests()

    summary = publish(status_event(number, "In Transit", minutes=30, order_number="WEB-NOT-IN-SALESFORCE"))

    assert summary["results"] == {"stale": 1}
    assert "not in Salesforce" in summary["shipments"][0]["detail"]
    assert methods(salesforce) == ["GET", "PATCH"]  # one try at the link, no second write without it
    record = org.shipment(number)
    assert (record["Status__c"], record["Order__c"]) == ("Delivered", None)


def test_a_link_that_could_not_be_written_fails_the_invocation_and_the_retry_links(publish, org, tracking,
                                                                                    salesforce, lambda_context):
    order, order_number = new_order(org, tracking)
    number = tracking()
    publish(status_event(number, "Delivered", minutes=90))
    stale = status_event(number, "In Transit", minutes=30, order_number=order_number)
    salesforce.inject("503", count=50, method="PATCH", path="Shipment__c")
    short = type(lambda_context)(timeout_ms=7_000)  # 2 s of retry budget once the layer keeps its 5 s margin

    with pytest.raises(ServiceUnavailable):
        publish(stale, short)  # not swallowed as stale: Lambda retries it, then the DLQ keeps it
    salesforce.clear_faults()
    assert org.shipment(number)["Order__c"] is None

    assert publish(stale)["results"] == {"linked": 1}
    assert org.shipment(number)["Order__c"] == order


# -- a different order number -------------------------------------------------------------------------------


def test_an_order_number_that_conflicts_with_the_link_is_logged_and_the_link_kept(publish, org, page, tracking,
                                                                                  salesforce, logs):
    order, order_number = new_order(org, tracking)
    _, other_number = new_order(org, tracking)
    number = tracking()
    publish(status_event(number, "Picked Up", minutes=10, order_number=order_number))

    newer = publish(status_event(number, "In Transit", minutes=20, order_number=other_number))
    salesforce.clear_requests()
    older = publish(status_event(number, "Label Created", minutes=0, order_number=other_number))

    assert newer["results"] == {"published": 1}  # the status is still news
    assert older["results"] == {"stale": 1}
    assert methods(salesforce) == ["GET"]  # a conflicting link is never written
    record = org.shipment(number)
    assert (record["Status__c"], record["Order__c"]) == ("In Transit", order)
    conflicts = log_lines(logs, "order number conflicts")
    assert [(c["level"], c["tracking_number"], c["order_number"], c["linked_order_number"]) for c in conflicts] == [
        ("WARNING", number, other_number, order_number)] * 2
    [_, in_transit] = page.events(number, 2)
    assert in_transit["Order_Number__c"] == order_number  # the page is told the order the shipment belongs to


# -- the buffered variant (SQS) -------------------------------------------------------------------------------


def test_an_sqs_batch_with_the_order_only_on_its_older_event_links_the_shipment(salesforce, state_table, org, page,
                                                                                tracking, lambda_context):
    order, order_number = new_order(org, tracking)
    number, other = tracking(), tracking()
    batch = [status_event(number, "Out for Delivery", minutes=120),
             status_event(number, "In Transit", minutes=60, order_number=order_number),  # superseded, yet linked
             status_event(other, "Picked Up", minutes=5)]
    records = [{"messageId": f"m{i}", "body": json.dumps(e)} for i, e in enumerate(batch)]
    salesforce.clear_requests()

    assert publisher.sqs_handler({"Records": records}, lambda_context) == {"batchItemFailures": []}

    assert methods(salesforce) == ["GET", "PATCH", "POST"]  # still three calls for the batch
    record = org.shipment(number)
    assert (record["Status__c"], record["Order__c"]) == ("Out for Delivery", order)
    assert [e["Status__c"] for e in page.events(number, 2, timeout=1.0)] == ["Out for Delivery"]


def test_a_stale_event_in_a_batch_adds_its_link_within_the_batch_upsert(salesforce, state_table, org, page, tracking,
                                                                        lambda_context, publish):
    order, order_number = new_order(org, tracking)
    number, other = tracking(), tracking()
    publish(status_event(number, "Delivered", minutes=90))
    batch = [status_event(number, "In Transit", minutes=30, order_number=order_number),
             status_event(other, "Picked Up", minutes=5)]
    records = [{"messageId": f"m{i}", "body": json.dumps(e)} for i, e in enumerate(batch)]
    salesforce.clear_requests()

    assert publisher.sqs_handler({"Records": records}, lambda_context) == {"batchItemFailures": []}

    assert methods(salesforce) == ["GET", "PATCH", "POST"]  # the link rides on the batch's one upsert
    record = org.shipment(number)
    assert (record["Status__c"], record["Order__c"]) == ("Delivered", order)
    assert org.shipment(other)["Status__c"] == "Picked Up"
    assert [e["Status__c"] for e in page.events(number, 2, timeout=1.0)] == ["Delivered"]


def test_two_order_numbers_in_one_batch_link_the_earliest_and_log_the_other(salesforce, state_table, org, tracking,
                                                                            lambda_context, logs):
    first, first_number = new_order(org, tracking)
    _, second_number = new_order(org, tracking)
    number = tracking()
    batch = [status_event(number, "Delivered", minutes=90, order_number=second_number),
             status_event(number, "Picked Up", minutes=10, order_number=first_number)]
    records = [{"messageId": f"m{i}", "body": json.dumps(e)} for i, e in enumerate(batch)]

    assert publisher.sqs_handler({"Records": records}, lambda_context) == {"batchItemFailures": []}

    record = org.shipment(number)
    assert (record["Status__c"], record["Order__c"]) == ("Delivered", first)  # as if they had come in time order
    [conflict] = log_lines(logs, "order number conflicts")
    assert (conflict["order_number"], conflict["linked_order_number"]) == (second_number, first_number)


def test_a_link_the_batch_could_not_write_is_written_by_the_redelivery(salesforce, state_table, org, tracking,
                                                                       lambda_context, publish):
    order, order_number = new_order(org, tracking)
    number = tracking()
    publish(status_event(number, "Delivered", minutes=90))
    batch = {"Records": [{"messageId": "stale", "body": json.dumps(
        status_event(number, "In Transit", minutes=30, order_number=order_number))}]}
    salesforce.inject("503", count=50, method="PATCH", path="Shipment__c")

    with pytest.raises(ServiceUnavailable):  # the whole call failed: SQS delivers the whole batch again
        publisher.sqs_handler(batch, type(lambda_context)(timeout_ms=7_000))
    salesforce.clear_faults()

    assert publisher.sqs_handler(batch, lambda_context) == {"batchItemFailures": []}
    assert org.shipment(number)["Order__c"] == order
