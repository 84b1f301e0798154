"""Smoke test of the Remote Call-In benchmark with a few orders: one API call per synchronous order, none for a
replay, every queued order in Salesforce after the worker ran (run() raises otherwise), and the table renders."""

from __future__ import annotations

import os

from patterns_benchmarks import remote_call_in


def test_a_small_run_writes_every_order_with_the_expected_api_calls():
    before = dict(os.environ)

    results = remote_call_in.run(orders=4, async_orders=20, async_batch=10)

    assert dict(os.environ) == before
    assert results["sync_api_calls_per_order"] == 1.0  # one Composite per order
    assert results["sync_api_calls_max"] == 1
    assert results["replays"] == 1  # and none for the replay (run() checks it)
    assert results["async_orders_in_salesforce"] == 20
    assert results["worker_failures"] == 0
    assert results["accept_requests"] == 2
    assert results["worker_invocations"] == 2  # one batch per accepted request's queue
    assert 0 < results["async_api_calls_per_order"] < 1  # a few calls per batch, not one per order
    assert results["sync_without_moto_p50_ms"] <= results["sync_p50_ms"]
    assert results["accept_without_moto_p50_ms"] <= results["accept_p50_ms"]
    assert results["direct_p50_ms"] > 0

    text = remote_call_in.report(results)
    assert "4 synchronous orders" in text
    assert "`POST /orders/async`, 10 orders a request (2 requests)" in text
    assert text.count("\n|") == 7  # header, rule, five rows
