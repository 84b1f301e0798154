"""Each invocation logs under its own order only: keys one request appends (order_number) never carry over to
the next request a warm container serves, whatever that request is (unsigned, malformed, another order)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from salesforce_access.observability import logger

from .conftest import make_order


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the functions' Powertools logger writes (one JSON object a line)."""
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    yield stream
    logger.registered_handler.setStream(previous)


def lines_of(stream: io.StringIO, start: int) -> list[dict[str, Any]]:
    """The JSON log lines written since position `start` (metrics lines are not log lines)."""
    records = [json.loads(line) for line in stream.getvalue()[start:].splitlines() if line.startswith("{")]
    return [record for record in records if "level" in record]


def test_the_next_request_on_a_warm_handler_is_not_logged_under_the_previous_order(salesforce, products, caller,
                                                                                    log_lines):
    order = make_order(products)
    assert caller.post(order).status == 201
    first = lines_of(log_lines, 0)
    assert any(line.get("order_number") == order["order_number"] for line in first), first  # really captured

    for refused in ({"Content-Type": "application/json"},  # unsigned: 401
                    None):  # signed but malformed: 400
        start = len(log_lines.getvalue())
        reply = caller.post("{not json", headers=refused) if refused else caller.post("{not json")
        assert reply.status in (400, 401), reply.body
        logged = lines_of(log_lines, start)
        assert logged, "the refused request logged nothing"
        assert all("order_number" not in line for line in logged), logged


def test_another_order_is_logged_under_its_own_number(salesforce, products, caller, log_lines):
    first, second = make_order(products), make_order(products)
    assert caller.post(first).status == 201
    start = len(log_lines.getvalue())
    assert caller.post(second).status == 201
    numbers = {line.get("order_number") for line in lines_of(log_lines, start)}
    assert numbers == {second["order_number"]}, numbers


def test_the_worker_after_the_api_logs_no_order_of_the_api(salesforce, products, caller, stack, mapping, log_lines):
    """In tests (as in any one process) both handlers share the layer's logger: the worker must start clean too."""
    refused = make_order(products, lines=[{"product_code": "NO-SUCH-PRODUCT", "quantity": 1, "unit_price": 1}])
    written = make_order(products)
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(refused))  # logged: dead-lettered
    assert caller.post(written).status == 201
    start = len(log_lines.getvalue())
    poll = mapping.poll()
    assert poll is not None
    assert poll.failed == []
    logged = lines_of(log_lines, start)
    assert any(line["message"] == "orders refused" for line in logged), logged
    assert all(line.get("order_number") != written["order_number"] for line in logged), logged
