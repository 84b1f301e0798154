"""POST /orders/async and the SQS worker: validated before queueing, drained in batches with few API calls,
the same idempotency as the synchronous path, refused orders dead-lettered with their reason."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from order_intake import container

from salesforce_access import get_access, soql

from .conftest import api_calls, composite_calls, make_order


def count(query: str, **params: Any) -> int:
    return get_access().request("GET", "query", params={"q": soql(query, **params)})["totalSize"]


def lines_of(number: str) -> list[dict[str, Any]]:
    return list(get_access().query(soql("SELECT Id, Quantity, PricebookEntryId FROM OrderItem "
                                        "WHERE Order.Ecommerce_Order_Number__c = {n} ORDER BY Id", n=number)))


def dead_letters(stack) -> dict[str, dict[str, str]]:
    """Dead-lettered order numbers (or raw bodies) -> their message attributes."""
    found = {}
    while messages := stack.receive(stack.dlq_url):
        for message in messages:
            try:
                key = json.loads(message["Body"]).get("order_number", message["Body"])
            except ValueError:
                key = message["Body"]
            found[key] = {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}
            stack.sqs.delete_message(QueueUrl=stack.dlq_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_async_validates_the_whole_batch_then_queues_every_order(salesforce, products, caller, stack):
    orders = [make_order(products) for _ in range(3)]

    reply = caller.post({"orders": orders}, "/orders/async")

    assert reply.status == 202
    assert reply.body == {"status": "queued", "accepted": 3, "order_numbers": [o["order_number"] for o in orders]}
    queued = [json.loads(m["Body"]) for m in stack.receive()]
    assert sorted(q["order_number"] for q in queued) == sorted(o["order_number"] for o in orders)
    assert api_calls(salesforce) == []  # accepting costs Salesforce nothing


def test_one_invalid_order_refuses_the_batch_and_queues_nothing(salesforce, products, caller, stack):
    bad = make_order(products)
    bad["lines"][0]["quantity"] = -1
    del bad["customer"]

    reply = caller.post({"orders": [make_order(products), bad]}, "/orders/async")

    assert reply.status == 400
    assert {e["field"] for e in reply.body["fields"]} == {"orders[1].customer", "orders[1].lines[0].quantity"}
    assert stack.count() == 0


@pytest.fixture
def linear_moto_receive(monkeypatch):
    """moto checks each received message's retention through get_queue_attributes, which recomputes every queue
    attribute by scanning every message: receiving 1,000 messages is quadratic (minutes). Same check, read
    straight from the queue."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    def valid(self, queue_name, message):
        period = self.get_queue(queue_name).message_retention_period
        return int(period) + message.sent_timestamp / 1000 > unix_time()

    monkeypatch.setattr(SQSBackend, "is_message_valid_based_on_retention_period", valid)


@pytest.mark.slow
@pytest.mark.usefixtures("linear_moto_receive")
def test_a_burst_of_1000_orders_is_drained_in_batches_with_few_api_calls(salesforce, products, caller, stack,
                                                                         mapping):
    tag = uuid.uuid4().hex[:6]
    customers = [f"C-{tag}-{i}" for i in range(200)]  # repeat customers: one Account each
    orders = []
    for i in range(1000):
        order = make_order(products, number=f"BURST-{tag}-{i:04d}")
        order["customer"]["erp_customer_id"] = customers[i % 200]
        orders.append(order)
    for start in (0, 500):
        assert caller.post({"orders": orders[start:start + 500]}, "/orders/async").status == 202
    salesforce.clear_requests()

    polls = mapping.drain()

    assert sum(len(p.received) for p in polls) == 1000
    assert [p.failed for p in polls if p.failed] == []
    calls = api_calls(salesforce)
    composites = composite_calls(salesforce)
    # 10 batches of 100 orders: one query for their existing lines and two all-or-none Composites each (a
    # Composite holds at most 200 lines, here 66 orders of 3 lines), plus one price book query in all.
    assert len(composites) == 20
    assert len(calls) == 31, [(c["method"], c["path"]) for c in calls]
    like = f"BURST-{tag}-%"
    assert count("SELECT COUNT() FROM Order WHERE Ecommerce_Order_Number__c LIKE {p}", p=like) == 1000
    assert count("SELECT COUNT() FROM OrderItem WHERE Order.Ecommerce_Order_Number__c LIKE {p}", p=like) == 3000
    assert count("SELECT COUNT() FROM Account WHERE ERP_Customer_Id__c LIKE {p}", p=f"C-{tag}-%") == 200
    assert stack.count() == 0
    assert dead_letters(stack) == {}

    # part of the burst again (an at-least-once redelivery, or the platform retrying) writes nothing
    assert caller.post({"orders": orders[:100]}, "/orders/async").status == 202
    salesforce.clear_requests()
    mapping.drain()
    assert composite_calls(salesforce) == []
    assert count("SELECT COUNT() FROM OrderItem WHERE Order.Ecommerce_Order_Number__c LIKE {p}", p=like) == 3000


def test_an_order_written_synchronously_is_not_written_again_by_the_worker(salesforce, products, caller, mapping):
    order = make_order(products)
    first = caller.post(order).body["salesforce"]
    changed = make_order(products)
    assert caller.post(changed).status == 201
    changed["lines"] = changed["lines"][:1]
    caller.post({"orders": [order, changed]}, "/orders/async")
    salesforce.clear_requests()

    [poll] = mapping.drain()

    assert poll.failed == []
    assert [line["Id"] for line in lines_of(order["order_number"])] == first["order_item_ids"]
    assert len(lines_of(changed["order_number"])) == 1  # the changed one was updated, its lines replaced
    assert len(composite_calls(salesforce)) == 1


def test_refused_orders_are_dead_lettered_with_their_reason_and_the_rest_is_written(salesforce, products, caller,
                                                                                     stack, mapping):
    warm = make_order(products)
    caller.post({"orders": [warm]}, "/orders/async")
    mapping.drain()  # the worker has now cached the price book entries
    get_access().request("DELETE", f"sobjects/PricebookEntry/{products.entries[products['gadget']]}")
    good = [make_order(products, lines=[{"product_code": products["widget"], "quantity": 1, "unit_price": 5}])
            for _ in range(3)]
    refused_by_salesforce = make_order(products)  # its gadget line now points at a deleted price book entry
    unknown = make_order(products, lines=[{"product_code": "NOPE-1", "quantity": 1, "unit_price": 1}])
    caller.post({"orders": [good[0], refused_by_salesforce, good[1], unknown, good[2]]}, "/orders/async")
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody="not an order")
    salesforce.clear_requests()

    [poll] = mapping.drain()

    assert poll.failed == []  # refused messages are dead-lettered by the worker, not retried
    letters = dead_letters(stack)
    assert letters[refused_by_salesforce["order_number"]]["failure_reason"] == "salesforce_rejected"
    details = json.loads(letters[refused_by_salesforce["order_number"]]["failure_data"])
    assert details["salesforce_errors"][0]["where"] == "lines[1]"
    assert letters[unknown["order_number"]]["failure_reason"] == "unknown_products"
    assert "NOPE-1" in letters[unknown["order_number"]]["failure_detail"]
    assert letters["not an order"]["failure_reason"] == "invalid_order"
    for order in good:
        assert len(lines_of(order["order_number"])) == 1
    assert lines_of(refused_by_salesforce["order_number"]) == []  # all-or-none: not even the good lines
    assert count("SELECT COUNT() FROM Order WHERE Ecommerce_Order_Number__c = {n}",
                 n=refused_by_salesforce["order_number"]) == 0
    # one Composite refused (the culprit is named per record), one for the rest
    assert len(composite_calls(salesforce)) == 2


def test_salesforce_down_leaves_the_batch_on_the_queue_for_later(salesforce, products, caller, stack, mapping,
                                                                 lambda_context, monkeypatch):
    orders = [make_order(products) for _ in range(4)]
    caller.post({"orders": orders}, "/orders/async")
    salesforce.inject("503", count=50, path="/composite$")
    mapping.context_factory = lambda: type(lambda_context)(timeout_ms=7_500)
    visibility: list[int] = []
    client = container.sqs()
    original = client.change_message_visibility_batch
    monkeypatch.setattr(client, "change_message_visibility_batch", lambda **kw: (
        visibility.extend(entry["VisibilityTimeout"] for entry in kw["Entries"]), original(**kw))[1])

    [poll] = mapping.drain()

    assert sorted(poll.failed) == sorted(poll.received)
    assert len(visibility) == 4
    assert all(15 <= seconds <= 30 for seconds in visibility)  # Retry-After 30 s, first receive, jittered
    assert stack.receive() == []  # postponed: hidden for Retry-After (30 s) rather than redelivered at once
    assert stack.count() == 4
    assert all(lines_of(o["order_number"]) == [] for o in orders)
    assert dead_letters(stack) == {}

    salesforce.clear_faults()
    mapping.context_factory = type(lambda_context)
    for message in poll.messages:  # time passes: the postponement ends
        stack.sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                            VisibilityTimeout=0)
    assert [p.failed for p in mapping.drain()] == [[]]
    assert all(len(lines_of(o["order_number"])) == 3 for o in orders)


def test_out_of_order_versions_never_move_an_order_back(salesforce, products, caller, stack, mapping):
    v1 = make_order(products, updated_at="2025-03-14T10:00:00Z")
    v2 = {**v1, "updated_at": "2025-03-14T11:00:00Z", "lines": v1["lines"][:1]}
    caller.post({"orders": [v2, v1]}, "/orders/async")  # the newer one first: SQS does not keep order

    [poll] = mapping.drain()
    caller.post({"orders": [v1]}, "/orders/async")  # and the older one again, later
    mapping.drain()

    assert poll.failed == []
    assert len(lines_of(v1["order_number"])) == 1
    assert dead_letters(stack) == {}


def test_a_refusal_the_dlq_does_not_take_stays_on_the_queue(salesforce, products, caller, stack, mapping,
                                                            monkeypatch):
    monkeypatch.setenv("ORDER_DLQ_URL", stack.dlq_url.replace("orders-dlq", "no-such-dlq"))
    container.reset()
    good = make_order(products)
    caller.post({"orders": [good]}, "/orders/async")
    bad_id = stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody="not an order")["MessageId"]

    [poll] = mapping.drain()

    assert poll.failed == [bad_id]  # not deleted unseen: SQS delivers it again, the redrive policy ends it
    assert stack.count() == 1
    assert dead_letters(stack) == {}
    assert len(lines_of(good["order_number"])) == len(good["lines"])  # the good order is written all the same
