"""Two writers of the same new order at the same time (issue 16, "duplicated order lines").

Salesforce is only slow (a 2 s delay on every Composite call, no errors): without a claim both writers find
no ledger entry, both create the order, and the upsert by order number keeps one Order but each Composite
inserts its lines. With the claim, the second writer does not write: the API answers 409 with Retry-After, the
worker leaves the message for later; retried, both find the version written and answer unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from order_intake import worker
from order_intake.ledger import OrderLedger

from salesforce_access import get_access, soql

from .conftest import composite_calls, make_order, sqs_event

DELAY_SECONDS = 2.0


def order_items(number: str) -> int:
    return get_access().request("GET", "query", params={"q": soql(
        "SELECT Id FROM OrderItem WHERE Order.Ecommerce_Order_Number__c = {n}", n=number)})["totalSize"]


def orders(number: str) -> int:
    return get_access().request("GET", "query", params={"q": soql(
        "SELECT Id FROM Order WHERE Ecommerce_Order_Number__c = {n}", n=number)})["totalSize"]


def together(*writers: Callable[[], Any]) -> list[Any]:
    """Run the writers in threads released at the same instant by a barrier; their results, in order."""
    barrier = threading.Barrier(len(writers))
    results: list[Any] = [None] * len(writers)
    errors: list[BaseException] = []

    def run(index: int, writer: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = writer()
        except BaseException as exc:  # surfaced in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def queued_batch(caller, stack, order: dict[str, Any]) -> dict[str, Any]:
    """The order sent through POST /orders/async and received as the worker's SQS event."""
    assert caller.post({"orders": [order]}, "/orders/async").status == 202
    messages = stack.receive()
    assert len(messages) == 1
    return sqs_event(messages, stack.queue_arn)


@pytest.fixture(autouse=True)
def atomic_moto_writes(monkeypatch):
    """DynamoDB applies a conditional write atomically; moto checks and writes in two Python steps that two
    threads can interleave. One lock around moto's item operations restores DynamoDB's guarantee."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("update_item", "put_item", "delete_item", "get_item"):
        original = getattr(DynamoDBBackend, name)

        def locked(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture
def slow_salesforce(salesforce):
    salesforce.inject("delay", count=10, method="POST", path=r"/composite$", delay_seconds=DELAY_SECONDS)
    yield salesforce
    salesforce.clear_faults()


def ledger_ids(number: str) -> dict[str, Any]:
    entry = OrderLedger("state").get(number)
    assert entry is not None
    return entry.ids()


def test_the_api_and_a_worker_batch_write_a_new_order_once(slow_salesforce, products, caller, stack, lambda_context):
    order = make_order(products)
    event = queued_batch(caller, stack, order)

    reply, response = together(lambda: caller.post(order),
                               lambda: worker.handler(event, type(lambda_context)()))

    number = order["order_number"]
    assert orders(number) == 1
    assert order_items(number) == 3  # exactly the order's lines, not twice
    assert len(composite_calls(slow_salesforce)) == 1  # the loser spent no Salesforce write
    deferred = bool(response["batchItemFailures"])
    assert (reply.status == 201) == deferred, (reply.status, response)  # exactly one of them wrote
    ids = ledger_ids(number)
    if reply.status == 201:
        assert reply.body["salesforce"] == ids
        retried = worker.handler(event, type(lambda_context)())  # the postponed message, delivered again
        assert retried["batchItemFailures"] == []
    else:
        assert reply.status == 409
        assert reply.body["error"] == "order_busy"
        assert reply.headers["Retry-After"] == "2"
        again = caller.post(order)
        assert (again.status, again.body["status"], again.body["salesforce"]) == (200, "unchanged", ids)
    assert order_items(number) == 3
    assert len(composite_calls(slow_salesforce)) == 1
    assert ledger_ids(number) == ids


def test_two_worker_batches_write_a_new_order_once(slow_salesforce, products, caller, stack, lambda_context):
    order = make_order(products)
    first, second = queued_batch(caller, stack, order), queued_batch(caller, stack, order)

    responses = together(lambda: worker.handler(first, type(lambda_context)()),
                         lambda: worker.handler(second, type(lambda_context)()))

    number = order["order_number"]
    assert orders(number) == 1
    assert order_items(number) == 3
    assert len(composite_calls(slow_salesforce)) == 1
    assert sorted(bool(r["batchItemFailures"]) for r in responses) == [False, True]  # one wrote, one deferred
    loser = first if responses[0]["batchItemFailures"] else second
    ids = ledger_ids(number)
    assert worker.handler(loser, type(lambda_context)())["batchItemFailures"] == []  # retried: unchanged
    assert order_items(number) == 3
    assert len(composite_calls(slow_salesforce)) == 1
    assert ledger_ids(number) == ids


def test_the_api_loser_retried_answers_unchanged_with_the_same_ids(slow_salesforce, products, caller):
    order = make_order(products)

    replies = together(lambda: caller.post(order), lambda: caller.post(order))

    assert sorted(r.status for r in replies) == [201, 409]
    winner = next(r for r in replies if r.status == 201)
    loser = next(r for r in replies if r.status == 409)
    assert loser.body["error"] == "order_busy"
    assert loser.headers["Retry-After"] == "2"
    again = caller.post(order)
    assert (again.status, again.body["status"], again.body["salesforce"]) == (200, "unchanged",
                                                                            winner.body["salesforce"])
    assert order_items(order["order_number"]) == 3


def test_a_crashed_writers_claim_blocks_until_it_lapses_then_the_next_writer_writes_once(salesforce, products,
                                                                                        caller, stack):
    order = make_order(products)
    number = order["order_number"]
    ledger = OrderLedger("state")
    now = time.time()
    assert ledger.claim(number, "crashed-writer", now, now + 60) == (True, None)  # then it dies: never released

    blocked = caller.post(order)
    assert (blocked.status, blocked.body["error"]) == (409, "order_busy")
    assert composite_calls(salesforce) == []

    stack.table.update_item(Key={"id": f"order#{number.lower()}"}, UpdateExpression="SET claim_expires = :past",
                            ExpressionAttributeValues={":past": int(now) - 1})  # its deadline has passed
    reply = caller.post(order)
    assert reply.status == 201
    assert order_items(number) == 3
    assert len(composite_calls(salesforce)) == 1
    item = stack.table.get_item(Key={"id": f"order#{number.lower()}"})["Item"]
    assert "claim_owner" not in item  # recording the version released the claim
    assert reply.body["salesforce"] == ledger_ids(number)
