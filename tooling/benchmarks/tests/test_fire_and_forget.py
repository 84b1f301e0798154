"""Smoke test of the Fire and Forget benchmark with a handful of contracts: every message is billed once and
written back (run() checks billing's request log and the Contracts, and raises otherwise), the billing latency
is in the figures, and the table renders."""

from __future__ import annotations

import os

from patterns_benchmarks import fire_and_forget


def test_a_small_run_bills_every_contract_once_for_each_batch_size():
    before = dict(os.environ)

    results = fire_and_forget.run(messages=5, billing_latency_ms=20)

    assert dict(os.environ) == before
    single, batch = results["batches"][1], results["batches"][10]
    assert single["invocations"] == 5  # one message per invocation...
    assert batch["invocations"] == 1  # ...against all five in one
    for figures in (single, batch):
        assert figures["failures"] == 0
        assert figures["ms_per_message"] >= 20  # each message waited for billing
        assert 0 < figures["messages_per_second"] <= 1000 / 20
        assert figures["end_to_end_per_second"] <= figures["messages_per_second"]
        assert figures["api_calls_per_message"] == 1.0  # the Contract PATCH, nothing else

    text = fire_and_forget.report(results)
    assert "5 contracts per batch size, billing latency 20 ms" in text
    assert text.count("\n|") == 4
