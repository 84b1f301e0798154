"""Pattern 5, UI Update: the shipment status publisher (EventBridge -> Shipment__c upsert + Shipment_Status__e)
and the carriers' webhook under every fault of the matrix. Each test checks that no status change is lost (the
record holds it and a subscribed page received its event, or the event waits in the DLQ with its error), that
none is written twice or published twice (exactly one event per change on the page) except where the outcome of
a publish is unknown (docs/ui-update.md: then at least once, every copy with the same de-duplication key), and
that the fault shows in a metric, a log line, Lambda's error count or the DLQ.

The deployed function is invoked asynchronously by the rule, one event per invocation (template.yaml:
MaximumRetryAttempts 2, on-failure destination the DLQ); `AsyncInvocations` plays that. The faults that only
make sense for a batch (running out of time in the middle of one, an SQS redelivery) use `sqs_handler`, the
buffered variant of the same function.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from shipment_status import handler as publisher

from tests.functions.shipment_status import conftest as status_fixtures
from tests.functions.shipment_status.conftest import sf_calls, status_event
from tests.functions.shipment_webhook import conftest as webhook_fixtures
from tests.functions.shipment_webhook.conftest import shipment, signed

from .conftest import CountdownContext

tracking = status_fixtures.tracking
state_table = status_fixtures.state_table
org = status_fixtures.org
page = status_fixtures.page
bus = webhook_fixtures.bus
call = webhook_fixtures.call

UPSERT = "composite/sobjects/Shipment__c"
PUBLISH = "composite/sobjects$"
MAXIMUM_RETRY_ATTEMPTS = 2  # the function's EventInvokeConfig


@dataclass
class AsyncInvocations:
    """Lambda's asynchronous invocation as the template configures it: an attempt, up to two retries, then the
    on-failure destination (the DLQ) gets the event with the last error. `errors` is what Lambda's Errors
    metric (and ShipmentStatusErrorsAlarm) counts."""

    sqs: Any
    dlq_url: str
    context: Callable[[], Any] = lambda: CountdownContext(30_000)
    errors: list[str] = field(default_factory=list)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any] | None:
        for attempt in range(1 + MAXIMUM_RETRY_ATTEMPTS):
            try:
                return publisher.handler(event, self.context())
            except Exception as exc:
                self.errors.append(type(exc).__name__)
                last, count = exc, attempt + 1
        record = {"version": "1.0",
                  "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": count},
                  "requestPayload": event, "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
                  "responsePayload": {"errorType": type(last).__name__, "errorMessage": str(last)}}
        self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=json.dumps(record))
        return None

    def dead_letters(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def lambda_async(salesforce: Any, state_table: Any) -> AsyncInvocations:
    sqs = boto3.client("sqs")
    return AsyncInvocations(sqs, sqs.create_queue(QueueName="shipment-status-dlq")["QueueUrl"])


def sqs_batch(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m{i}", "body": json.dumps(e)} for i, e in enumerate(events)]}


def shown_once(org: Any, page: Any, number: str, status: str, wait: float = 0.5) -> None:
    """The record holds the status and the page received exactly one event for it (a second one would have
    come within `wait` seconds: the events of one call arrive together)."""
    assert org.shipment(number)["Status__c"] == status
    assert [e["Status__c"] for e in page.events(number, 2, timeout=wait)] == [status]


def each_shown_once(org: Any, page: Any, numbers: list[str], status: str) -> None:
    for index, number in enumerate(numbers):
        shown_once(org, page, number, status, wait=0.5 if index == 0 else 0)


# -- Salesforce faults -------------------------------------------------------------------------------------------


def test_session_expiry_between_the_upsert_and_the_publish(lambda_async, salesforce, org, page, tracking, observed):
    number = tracking()
    salesforce.inject("INVALID_SESSION_ID", count=1, method="POST", path=PUBLISH)  # the token expired meanwhile

    summary = lambda_async.invoke(status_event(number, "In Transit"))

    assert summary["results"] == {"published": 1}
    shown_once(org, page, number, "In Transit")
    metrics = observed.metrics()
    assert (metrics["SalesforceReauthentications"], metrics["ShipmentChangesPublished"]) == (1, 1)
    assert lambda_async.errors == []


@pytest.mark.parametrize("kind", ["503", "UNABLE_TO_LOCK_ROW"])
def test_a_passing_salesforce_fault_is_retried_inside_the_invocation(lambda_async, salesforce, fast_layer, org, page,
                                                                     tracking, observed, kind):
    number = tracking()
    salesforce.inject(kind, count=2, method="PATCH", path=UPSERT)

    lambda_async.invoke(status_event(number, "Picked Up"))

    shown_once(org, page, number, "Picked Up")
    assert observed.metrics()["SalesforceRetries"] == 2
    assert {r["error"] for r in observed.logs("Transient Salesforce failure; retrying")} == \
        {"ServiceUnavailable" if kind == "503" else "RowLocked"}
    assert lambda_async.errors == []


@pytest.mark.parametrize("kind", ["503", "UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED"])
def test_a_lasting_salesforce_fault_ends_in_the_dlq_and_the_redriven_event_is_published_once(
        lambda_async, salesforce, fast_layer, org, page, tracking, observed, kind):
    number = tracking()
    event = status_event(number, "Delivered", minutes=60)
    salesforce.inject(kind, count=1000, method="POST", path=PUBLISH)  # the record is written, the event is not

    assert lambda_async.invoke(event) is None

    [dead] = lambda_async.dead_letters()
    assert dead["requestPayload"] == event
    assert dead["responsePayload"]["errorType"] in {"ServiceUnavailable", "RowLocked", "RequestLimitExceeded"}
    assert len(lambda_async.errors) == 1 + MAXIMUM_RETRY_ATTEMPTS
    failed = observed.logs("Salesforce call failed")  # one error line per failed attempt, with the error code
    assert [(r["level"], r["error"], r["tracking_numbers"]) for r in failed] == \
        [("ERROR", dead["responsePayload"]["errorType"], [number])] * (1 + MAXIMUM_RETRY_ATTEMPTS)
    assert {r["error_code"] for r in failed} == {"SERVER_UNAVAILABLE" if kind == "503" else kind}
    assert org.shipment(number)["Status__c"] == "Delivered"
    assert page.events(number, 1, timeout=0.3) == []
    salesforce.clear_faults()
    salesforce.clear_requests()

    redriven = lambda_async.invoke(dead["requestPayload"])  # an operator redrives the DLQ

    assert redriven["results"] == {"published": 1}
    assert [m for m, _ in sf_calls(salesforce)] == ["GET", "POST"]  # no second upsert
    shown_once(org, page, number, "Delivered")
    assert observed.metrics()["ShipmentChangesPublished"] == 1


# -- slow answers, dropped connections ---------------------------------------------------------------------------


def test_an_upsert_slower_than_the_timeout_is_sent_again(lambda_async, salesforce, short_timeouts, org, page, tracking,
                                                        observed):
    number = tracking()
    salesforce.inject("delay", count=1, method="PATCH", path=UPSERT, delay_seconds=1.5)  # the layer reads for 1 s

    lambda_async.invoke(status_event(number, "Out for Delivery"))

    shown_once(org, page, number, "Out for Delivery")
    assert observed.metrics()["SalesforceRetries"] == 1  # an upsert by external id is safe to send again
    assert [r["error"] for r in observed.logs("Transient Salesforce failure; retrying")] == ["ConnectionFailed"]


def test_a_publish_slower_than_the_timeout_is_published_again_with_the_same_key(lambda_async, salesforce,
                                                                                short_timeouts, org, page, tracking,
                                                                                observed):
    """Platform events cannot be looked up, so a publish whose answer is lost is sent again (at least once): the
    page may get two copies, and drops the second by its key (Tracking_Number__c + Status_Time__c)."""
    number = tracking()
    event = status_event(number, "In Transit")
    salesforce.inject("delay", count=1, method="POST", path=PUBLISH, delay_seconds=1.5)  # the layer reads for 1 s

    lambda_async.invoke(event)

    assert lambda_async.errors == ["ShipmentUpdateFailed"]  # the first attempt did not know; Lambda retried it
    received = page.events(number, 2, timeout=3.0)
    # The slow publish went through after all and so did the retry's: two copies, one key, nothing lost.
    assert [(e["Tracking_Number__c"], e["Status_Time__c"], e["Status__c"]) for e in received] == \
        [(number, "2025-03-02T08:00:00.000Z", "In Transit")] * 2
    assert org.shipment(number)["Status__c"] == "In Transit"
    assert [m for m, _ in sf_calls(salesforce)].count("PATCH") == 1  # the record was written once, not moved
    [unknown] = observed.logs("publish outcome unknown")
    assert (unknown["level"], unknown["tracking_number"], unknown["dedup_key"]) == \
        ("WARNING", number, f"{number}|2025-03-02T08:00:00.000Z")
    metrics = observed.metrics()
    assert (metrics["ShipmentChangesUnknown"], metrics["ShipmentChangesPublished"]) == (1, 1)

    again = lambda_async.invoke(event)  # a further delivery or retry of the same change

    assert again["results"] == {"duplicate": 1}
    assert len(page.events(number, 3, timeout=0.5)) == 2  # no third copy
    assert lambda_async.errors == ["ShipmentUpdateFailed"]


def test_dropped_connections_on_the_read_and_on_the_publish(lambda_async, salesforce, fast_layer, org, page, tracking,
                                                            observed):
    number = tracking()
    salesforce.inject("drop", count=1, method="GET", path="/query")  # a read: retried by the layer
    salesforce.inject("drop", count=1, method="POST", path=PUBLISH)  # a create: never replayed blindly

    lambda_async.invoke(status_event(number, "Picked Up"))

    # The dropped publish never reached the org, so Lambda's retry published it once; the first attempt could
    # not know that (outcome unknown).
    assert lambda_async.errors == ["ShipmentUpdateFailed"]
    shown_once(org, page, number, "Picked Up")
    metrics = observed.metrics()
    assert (metrics["SalesforceRetries"], metrics["ShipmentChangesPublished"], metrics["ShipmentChangesUnknown"]) == \
        (1, 1, 1)
    assert len(observed.logs("publish outcome unknown")) == 1


# -- logistics side: the bus the carriers' webhook puts events on ------------------------------------------------


def test_the_bus_down_makes_the_webhook_ask_the_carrier_to_resend_and_the_resend_is_accepted_once(call, bus,
                                                                                                  monkeypatch,
                                                                                                  observed):
    from shipment_webhook import handler as webhook

    body = json.dumps({"events": [shipment("1ZBUSDOWN0000001"), shipment("1ZBUSDOWN0000002")]}).encode()
    monkeypatch.setenv("LOGISTICS_BUS_NAME", "logistics-gone")
    webhook.reset()

    status, reply, headers = call(body, signed(body))

    assert (status, reply["error"], headers["Retry-After"]) == (503, "unavailable", "30")
    assert bus.received() == []
    monkeypatch.setenv("LOGISTICS_BUS_NAME", "logistics")
    webhook.reset()

    status, reply, _ = call(body, signed(body))  # the carrier sends the same request again

    assert (status, reply["accepted"]) == (202, 2)
    assert sorted(e["detail"]["tracking_number"] for e in bus.received()) == ["1ZBUSDOWN0000001", "1ZBUSDOWN0000002"]
    metrics = observed.metrics()
    assert (metrics["ShipmentWebhookBusFailures"], metrics["ShipmentWebhookEvents"]) == (1, 2)
    assert observed.logs("events not put on the bus")


# -- out of time, redelivery, duplicates -------------------------------------------------------------------------


def test_running_out_of_time_in_the_middle_of_a_batch(salesforce, state_table, org, page, tracking, observed,
                                                      monkeypatch):
    numbers = [tracking() for _ in range(3)]
    batch = sqs_batch([status_event(n, "In Transit", minutes=10) for n in numbers])
    # 7 s left: the layer keeps 5 s back; the upsert, slow today, does not answer in the other 2 s and there is
    # no time to send it again. The whole batch fails and SQS delivers it again.
    salesforce.inject("delay", count=1, method="PATCH", path=UPSERT, delay_seconds=3)

    with pytest.raises(Exception, match="no response") as failed:
        publisher.sqs_handler(batch, CountdownContext(7_000))
    assert type(failed.value).__name__ == "ConnectionFailed"

    assert publisher.sqs_handler(batch, CountdownContext(60_000)) == {"batchItemFailures": []}

    each_shown_once(org, page, numbers, "In Transit")
    assert observed.metrics()["ShipmentChangesPublished"] == 3


def test_an_sqs_redelivery_of_a_batch_publishes_nothing_more(salesforce, state_table, org, page, tracking, observed,
                                                             lambda_context):
    numbers = [tracking() for _ in range(3)]
    batch = sqs_batch([status_event(n, "Delivered", minutes=30) for n in numbers])

    assert publisher.sqs_handler(batch, lambda_context) == {"batchItemFailures": []}
    salesforce.clear_requests()
    assert publisher.sqs_handler(batch, lambda_context) == {"batchItemFailures": []}  # delivered again

    assert [m for m, _ in sf_calls(salesforce)] == ["GET"]  # read, found done, nothing written
    each_shown_once(org, page, numbers, "Delivered")
    metrics = observed.metrics()
    assert (metrics["ShipmentChangesPublished"], metrics["ShipmentChangesDuplicate"]) == (3, 3)


def test_the_same_event_delivered_twice_and_an_older_one_late(lambda_async, salesforce, org, page, tracking, observed):
    number = tracking()
    newer = status_event(number, "Out for Delivery", minutes=120)

    lambda_async.invoke(newer)
    lambda_async.invoke(newer)  # EventBridge delivers at least once
    lambda_async.invoke(status_event(number, "In Transit", minutes=60))  # and out of order

    shown_once(org, page, number, "Out for Delivery")
    metrics = observed.metrics()
    assert (metrics["ShipmentChangesPublished"], metrics["ShipmentChangesDuplicate"],
            metrics["ShipmentChangesStale"]) == (1, 1, 1)
    assert [r["result"] for r in observed.logs("shipment change")] == ["published", "duplicate", "stale"]


# -- the order link: a fact every event may carry, whatever the order of arrival ---------------------------------


def _order(org: Any, tracking: Any) -> tuple[str, str]:
    account = org.create("Account", {"Name": "Order Link Reliability"})
    number = f"WEB-{tracking()}"
    return org.create("Order", {"AccountId": account, "EffectiveDate": "2025-03-01", "Status": "Draft",
                                "Ecommerce_Order_Number__c": number}), number


def test_an_older_event_with_the_order_after_a_newer_one_links_it_and_is_counted(lambda_async, org, page, tracking,
                                                                                 observed):
    # Issue 16: the older event used to be dropped as stale with its order number (no error, metric or DLQ).
    order, order_number = _order(org, tracking)
    number = tracking()

    lambda_async.invoke(status_event(number, "Out for Delivery", minutes=120))
    lambda_async.invoke(status_event(number, "In Transit", minutes=60, order_number=order_number))
    lambda_async.invoke(status_event(number, "In Transit", minutes=60, order_number=order_number))  # again

    record = org.shipment(number)
    assert (record["Status__c"], record["Order__c"]) == ("Out for Delivery", order)
    shown_once(org, page, number, "Out for Delivery")
    metrics = observed.metrics()
    assert (metrics["ShipmentChangesPublished"], metrics["ShipmentChangesLinked"],
            metrics["ShipmentChangesStale"]) == (1, 1, 1)
    assert [r["result"] for r in observed.logs("shipment change")] == ["published", "linked", "stale"]
    assert lambda_async.errors == []
    assert lambda_async.dead_letters() == []


def test_an_order_number_that_conflicts_with_the_link_is_counted_and_never_written(lambda_async, org, tracking,
                                                                                  observed):
    order, order_number = _order(org, tracking)
    _, other_number = _order(org, tracking)
    number = tracking()

    lambda_async.invoke(status_event(number, "Picked Up", minutes=10, order_number=order_number))
    lambda_async.invoke(status_event(number, "Delivered", minutes=90, order_number=other_number))

    record = org.shipment(number)
    assert (record["Status__c"], record["Order__c"]) == ("Delivered", order)
    assert observed.metrics()["ShipmentOrderConflicts"] == 1
    [conflict] = observed.logs("order number conflicts")
    assert (conflict["level"], conflict["order_number"], conflict["linked_order_number"]) == (
        "WARNING", other_number, order_number)
    assert lambda_async.errors == []


def test_a_busy_shipment_fails_the_older_message_that_carried_its_order_too(salesforce, state_table, org, page,
                                                                           tracking, observed, lambda_context):
    # In the buffered variant the older message is superseded by the newer one; if the newer one cannot be
    # applied now (here: another invocation holds the lease), the older one must come back with it, or its order
    # number would be deleted from the queue and the redelivered newer one would link nothing.
    order, order_number = _order(org, tracking)
    number = tracking()
    batch = sqs_batch([status_event(number, "Delivered", minutes=90),
                       status_event(number, "Picked Up", minutes=10, order_number=order_number),
                       status_event(number, "In Transit", minutes=30)])
    lease = {"id": {"S": f"shipment-status#{number}"}}
    boto3.client("dynamodb").put_item(TableName="state", Item={
        **lease, "lease_owner": {"S": "another-invocation"}, "lease_expires": {"N": "99999999999"}})

    assert publisher.sqs_handler(batch, lambda_context) == {
        "batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}  # m2 carried nothing: done
    boto3.client("dynamodb").delete_item(TableName="state", Key=lease)  # the other invocation finished
    redelivered = {"Records": [r for r in batch["Records"] if r["messageId"] in ("m0", "m1")]}
    assert publisher.sqs_handler(redelivered, lambda_context) == {"batchItemFailures": []}

    record = org.shipment(number)
    assert (record["Status__c"], record["Order__c"]) == ("Delivered", order)
    shown_once(org, page, number, "Delivered")
    assert observed.metrics()["ShipmentChangesBusy"] == 2
