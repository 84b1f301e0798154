"""Smoke test of the UI Update benchmark with a few events: each status change goes carrier -> webhook -> bus
-> publisher -> emulator -> a subscribed page (run() waits for the page to receive every one and raises
otherwise), the baseline reaches the same page, and the table renders."""

from __future__ import annotations

import os

from patterns_benchmarks import ui_update


def test_a_small_run_delivers_every_event_to_the_page():
    before = dict(os.environ)

    results = ui_update.run(events=3)

    assert dict(os.environ) == before
    assert results["events"] == 3
    for stage in ("direct", "total", "webhook", "bus", "to_page", "publisher"):
        assert 0 < results[f"{stage}_p50_ms"] <= results[f"{stage}_p99_ms"]
    assert results["total_p50_ms"] > results["webhook_p50_ms"]  # the webhook's answer is only the first stage
    assert results["webhook_without_moto_p50_ms"] <= results["webhook_p50_ms"]
    assert results["publisher_without_moto_p50_ms"] <= results["publisher_p50_ms"]

    text = ui_update.report(results)
    assert "3 status changes" in text
    assert text.count("\n|") == 8  # header, rule, six rows
