"""Smoke test of the Request and Reply benchmark with a few calls: the figures come from real ERP reads, the
down phase really opens the breaker, the run leaves no setting behind, and the table renders."""

from __future__ import annotations

import os

from patterns_benchmarks import request_reply


def test_a_small_run_measures_both_sides_and_the_breaker():
    before = dict(os.environ)

    results = request_reply.run(calls=30, erp_latency_ms=5, down_calls=10)

    assert dict(os.environ) == before  # ERP_BASE_URL and the template's variables were put back
    assert results["direct_p50_ms"] >= 5  # the stand-in's latency is in the baseline...
    assert results["handler_p50_ms"] >= 5  # ...and in every call through the handler (cache bypassed)
    assert results["direct_p50_ms"] <= results["direct_p99_ms"]
    assert results["handler_p50_ms"] <= results["handler_p99_ms"]
    assert 0 < results["own_p50_ms"] < results["handler_p50_ms"]  # the ERP call is most of an invocation
    assert results["cached_p50_ms"] < results["handler_p50_ms"]  # no ERP call
    assert results["calls_to_open"] == 3  # the template's BREAKER_FAILURE_THRESHOLD
    assert results["down_closed_answers"] == {"503 ERP_UNAVAILABLE": 3}
    assert results["open_stale_answers"] == {"200 stale": 10}
    assert results["open_unknown_answers"] == {"503 ERP_CIRCUIT_OPEN": 10}
    assert results["breaker_state_after"] == "open"

    text = request_reply.report(results)
    assert "30 warm calls each way" in text
    assert "overhead added by the function" in text
    assert "outside its ERP adapter" in text
    assert "503 ERP_CIRCUIT_OPEN x10" in text
