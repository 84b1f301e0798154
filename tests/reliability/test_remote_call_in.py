"""Pattern 4, Remote Call-In: POST /orders (one all-or-none Composite per order) and the SQS worker behind
POST /orders/async (one Composite per group of orders) under every fault of the matrix. Each test checks that no
order is lost (it ends in Salesforce with all its lines, or the caller is told to send it again, or it waits on
the queue / in the DLQ), that none is written twice (one Order per order number, exactly its own lines) and that
the fault shows in a metric, a log line or the DLQ."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from order_intake import worker
from order_intake.salesforce import SalesforceOrders

from salesforce_access import get_access, soql
from tests.functions.order_intake import conftest as intake_fixtures
from tests.functions.order_intake.conftest import composite_calls, make_order, sqs_event

from .conftest import CountdownContext, before_call

stack = intake_fixtures.stack
caller = intake_fixtures.caller
mapping = intake_fixtures.mapping
_catalogs: dict[int, intake_fixtures.Catalog] = {}


@pytest.fixture
def products(salesforce: Any) -> intake_fixtures.Catalog:
    """Three active products in the standard price book, created once per emulator (none of these tests changes
    them; the functions' price book caches are emptied for every test by `stack`)."""
    key = id(salesforce.app)
    if key not in _catalogs:
        access, tag = get_access(), uuid.uuid4().hex[:8].upper()
        catalog = intake_fixtures.Catalog()
        catalog.pricebook_id = next(access.query("SELECT Id FROM Pricebook2 WHERE IsStandard = true"))["Id"]
        for name in ("widget", "gadget", "gizmo"):
            code = f"{name.upper()}-{tag}"
            product = access.request("POST", "sobjects/Product2", json={"Name": name, "ProductCode": code,
                                                                         "IsActive": True})
            entry = access.request("POST", "sobjects/PricebookEntry", json={
                "Pricebook2Id": catalog.pricebook_id, "Product2Id": product["id"], "UnitPrice": 10, "IsActive": True})
            catalog.codes[name], catalog.entries[code] = code, entry["id"]
        _catalogs[key] = catalog
    salesforce.clear_requests()
    return _catalogs[key]

LINES = 70  # four such orders make two Composites in the worker (at most 200 lines each): [0, 1] and [2, 3]


def in_salesforce(number: str) -> tuple[int, int]:
    """(Orders, OrderItems) Salesforce holds for an order number."""
    access = get_access()
    orders = access.request("GET", "query", params={"q": soql(
        "SELECT COUNT() FROM Order WHERE Ecommerce_Order_Number__c = {n}", n=number)})["totalSize"]
    lines = access.request("GET", "query", params={"q": soql(
        "SELECT COUNT() FROM OrderItem WHERE Order.Ecommerce_Order_Number__c = {n}", n=number)})["totalSize"]
    return orders, lines


def big_orders(products: Any, count: int = 4) -> list[dict[str, Any]]:
    line = {"product_code": products["widget"], "quantity": 1, "unit_price": "9.50"}
    return [make_order(products, lines=[line] * LINES) for _ in range(count)]


def queue_orders(caller: Any, orders: list[dict[str, Any]]) -> None:
    assert caller.post({"orders": orders}, "/orders/async").status == 202


def redeliver_now(stack: Any, poll: Any) -> None:
    """Time passes: the messages the worker handed back (and postponed) become visible again."""
    for message in poll.messages:
        if message["MessageId"] in poll.failed:
            stack.sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                            VisibilityTimeout=0)


def composites_done(salesforce: Any) -> int:
    """Composite requests Salesforce answered 200 (a refused or replayed one is logged with its error status)."""
    return len([c for c in composite_calls(salesforce) if c["status"] == 200])


def wait_for_composites(salesforce: Any, count: int, timeout: float = 10.0) -> None:
    """Until the emulator has finished `count` Composite requests (a delayed one commits after its client left)."""
    deadline = time.monotonic() + timeout
    while composites_done(salesforce) < count and time.monotonic() < deadline:
        time.sleep(0.05)


# -- session expiry ----------------------------------------------------------------------------------------------


def test_session_expiry_between_reading_the_price_book_and_writing_the_order(salesforce, products, caller, observed,
                                                                            monkeypatch):
    order = make_order(products)
    before_call(monkeypatch, SalesforceOrders, "write_order", 1, salesforce.expire_tokens)

    reply = caller.post(order)

    assert reply.status == 201
    assert in_salesforce(order["order_number"]) == (1, 3)
    metrics = observed.metrics()
    assert (metrics["SalesforceReauthentications"], metrics["OrdersCreated"]) == (1, 1)
    assert observed.logs("Salesforce session expired; re-authenticating once and replaying")


def test_session_expiry_between_two_composites_of_a_worker_batch(salesforce, products, caller, mapping, observed,
                                                                 monkeypatch):
    orders = big_orders(products)
    queue_orders(caller, orders)
    before_call(monkeypatch, SalesforceOrders, "write_orders", 2, salesforce.expire_tokens)
    salesforce.clear_requests()

    [poll] = mapping.drain()

    assert poll.failed == []
    assert [in_salesforce(o["order_number"]) for o in orders] == [(1, LINES)] * 4
    assert composites_done(salesforce) == 2
    metrics = observed.metrics()
    assert (metrics["SalesforceReauthentications"], metrics["OrdersCreated"]) == (1, 4)


# -- 503, UNABLE_TO_LOCK_ROW, REQUEST_LIMIT_EXCEEDED --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["503", "UNABLE_TO_LOCK_ROW"])
def test_a_passing_salesforce_fault_is_retried_inside_the_request(salesforce, products, caller, fast_layer, observed,
                                                                  kind):
    order = make_order(products)
    salesforce.inject(kind, count=2, path="/composite$")

    assert caller.post(order).status == 201

    assert in_salesforce(order["order_number"]) == (1, 3)
    assert observed.metrics()["SalesforceRetries"] == 2  # refused before processing: safe even for a POST
    assert {r["error"] for r in observed.logs("Transient Salesforce failure; retrying")} == \
        {"ServiceUnavailable" if kind == "503" else "RowLocked"}


@pytest.mark.parametrize(("kind", "retry_after"), [("503", "30"), ("UNABLE_TO_LOCK_ROW", "30"),
                                                   ("REQUEST_LIMIT_EXCEEDED", "900")])
def test_a_lasting_salesforce_fault_answers_503_and_the_resent_order_is_written_once(salesforce, products, caller,
                                                                                    fast_layer, observed, kind,
                                                                                    retry_after):
    order = make_order(products)
    salesforce.inject(kind, count=100, path="/composite$")

    refused = caller.post(order)

    assert (refused.status, refused.body["error"]) == (503, "salesforce_unavailable")
    assert refused.headers["Retry-After"] == retry_after
    assert in_salesforce(order["order_number"]) == (0, 0)
    salesforce.clear_faults()

    assert caller.post(order).status == 201
    assert caller.post(order).body["status"] == "unchanged"  # and once more: nothing written

    assert in_salesforce(order["order_number"]) == (1, 3)
    metrics = observed.metrics()
    assert (metrics["OrdersDeferred"], metrics["OrdersCreated"], metrics["OrdersUnchanged"]) == (1, 1, 1)


@pytest.mark.parametrize("kind", ["503", "UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED"])
def test_a_lasting_salesforce_fault_in_the_middle_of_a_worker_batch(salesforce, products, caller, stack, mapping,
                                                                    fast_layer, observed, monkeypatch, kind):
    orders = big_orders(products)
    queue_orders(caller, orders)
    before_call(monkeypatch, SalesforceOrders, "write_orders", 2,
                lambda: salesforce.inject(kind, count=100, path="/composite$"))

    [poll] = mapping.drain()

    assert len(poll.failed) == 2  # the second Composite's orders: postponed, not lost
    assert [in_salesforce(o["order_number"])[0] for o in orders] == [1, 1, 0, 0]
    assert stack.count() == 2
    salesforce.clear_faults()
    redeliver_now(stack, poll)

    assert [p.failed for p in mapping.drain()] == [[]]

    assert [in_salesforce(o["order_number"]) for o in orders] == [(1, LINES)] * 4
    assert stack.count() == 0
    metrics = observed.metrics()
    assert (metrics["OrdersDeferred"], metrics["OrdersCreated"]) == (2, 4)


# -- slow answers, dropped connections ---------------------------------------------------------------------------


def test_a_write_slower_than_the_timeout_is_resent_without_a_duplicate(salesforce, products, caller, short_timeouts,
                                                                       observed):
    assert caller.post(make_order(products)).status == 201  # warm: the price book is cached
    order = make_order(products)
    salesforce.inject("delay", count=1, path="/composite$", delay_seconds=1.5)  # the layer reads for 1 s
    salesforce.clear_requests()

    lost = caller.post(order)

    assert (lost.status, lost.body["error"]) == (503, "salesforce_unavailable")  # outcome unknown: not replayed
    wait_for_composites(salesforce, 1)  # Salesforce committed it after the client gave up
    assert in_salesforce(order["order_number"]) == (1, 3)

    again = caller.post(order)

    assert (again.status, again.body["status"]) == (200, "updated")  # found, its lines replaced, not added
    assert in_salesforce(order["order_number"]) == (1, 3)
    assert observed.logs("Salesforce unavailable")[0]["error"].startswith("no response (ReadTimeout)")
    assert observed.metrics()["OrdersDeferred"] == 1


def test_dropped_connections_on_a_read_and_on_the_write(salesforce, products, caller, fast_layer, observed):
    order = make_order(products)
    salesforce.inject("drop", count=1, method="GET", path="/query")  # the price book read: retried
    salesforce.inject("drop", count=1, path="/composite$")  # the write: dropped before Salesforce applied it

    dropped = caller.post(order)

    assert (dropped.status, dropped.body["error"]) == (503, "salesforce_unavailable")
    assert in_salesforce(order["order_number"]) == (0, 0)
    assert caller.post(order).status == 201
    assert in_salesforce(order["order_number"]) == (1, 3)
    metrics = observed.metrics()
    assert (metrics["SalesforceRetries"], metrics["OrdersDeferred"], metrics["OrdersCreated"]) == (1, 1, 1)


# -- out of time, redelivery, duplicates -------------------------------------------------------------------------


def test_running_out_of_time_in_the_middle_of_a_worker_batch(salesforce, products, caller, stack, mapping, observed,
                                                             monkeypatch):
    orders = big_orders(products)
    queue_orders(caller, orders)
    # 8 s left: the layer keeps 5 s back, so the second Composite, slow today, must answer within what is left
    # of the other 3 s; it does not, and its outcome is unknown.
    before_call(monkeypatch, SalesforceOrders, "write_orders", 2,
                lambda: salesforce.inject("delay", count=1, path="/composite$", delay_seconds=4))
    mapping.context_factory = lambda: CountdownContext(8_000)
    salesforce.clear_requests()

    [poll] = mapping.drain()

    assert len(poll.failed) == 2
    assert observed.metrics()["OrdersDeferred"] == 2
    wait_for_composites(salesforce, 2)  # the slow one was applied after all
    redeliver_now(stack, poll)
    mapping.context_factory = lambda: CountdownContext(900_000)  # a fresh invocation with time to spare

    assert [p.failed for p in mapping.drain()] == [[]]

    assert [in_salesforce(o["order_number"]) for o in orders] == [(1, LINES)] * 4
    metrics = observed.metrics()
    assert (metrics["OrdersCreated"], metrics["OrdersUpdated"]) == (2, 2)


def test_an_sqs_redelivery_of_a_written_batch_writes_nothing(salesforce, products, caller, stack, observed,
                                                             lambda_context):
    orders = [make_order(products) for _ in range(3)]
    queue_orders(caller, orders)
    messages = stack.receive()
    event = sqs_event(messages, stack.queue_arn)

    assert worker.handler(event, lambda_context)["batchItemFailures"] == []
    salesforce.clear_requests()
    assert worker.handler(event, lambda_context)["batchItemFailures"] == []  # delivered again before the delete

    assert composite_calls(salesforce) == []
    assert [in_salesforce(o["order_number"]) for o in orders] == [(1, 3)] * 3
    metrics = observed.metrics()
    assert (metrics["OrdersCreated"], metrics["OrdersUnchanged"]) == (3, 3)


def test_an_order_failing_every_delivery_ends_in_the_dlq(salesforce, products, caller, stack, mapping, fast_layer,
                                                         observed):
    order = make_order(products)
    queue_orders(caller, [order])
    salesforce.inject("503", count=1000, path="/composite$")

    for _ in range(intake_fixtures.MAX_RECEIVE_COUNT):
        poll = mapping.poll()
        assert poll is not None
        assert len(poll.failed) == 1
        redeliver_now(stack, poll)

    assert stack.receive() == []  # the redrive policy moved it
    [dead] = stack.receive(stack.dlq_url)
    assert dead["Body"] == poll.messages[0]["Body"]
    assert observed.metrics()["OrdersDeferred"] == intake_fixtures.MAX_RECEIVE_COUNT
    assert in_salesforce(order["order_number"]) == (0, 0)


def test_the_same_order_sent_twice_and_queued_again_is_written_once(salesforce, products, caller, mapping, observed):
    order = make_order(products, number=f"TWICE-{uuid.uuid4().hex[:8]}")

    first = caller.post(order)
    second = caller.post(order)  # the platform did not see the first answer
    queue_orders(caller, [order])  # and its nightly replay queues it once more
    salesforce.clear_requests()
    [poll] = mapping.drain()

    assert (first.status, second.status, second.body["status"]) == (201, 200, "unchanged")
    assert second.body["salesforce"] == first.body["salesforce"]
    assert poll.failed == []
    assert composite_calls(salesforce) == []
    assert in_salesforce(order["order_number"]) == (1, 3)
    metrics = observed.metrics()
    assert (metrics["OrdersCreated"], metrics["OrdersUnchanged"]) == (1, 2)
