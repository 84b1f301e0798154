"""The run lifecycle's own decisions, with its clock injected: the window a start plans and the run it records."""

from __future__ import annotations

from datetime import UTC, datetime

from customer_sync import container
from customer_sync.events import StartRequest
from customer_sync.runs import plan_window

NOW = datetime(2026, 3, 1, 2, 0, 0, 123456, tzinfo=UTC)
MARKS = {"salesforce": "2026-02-28T02:00:00.000Z", "erp": "2026-02-28T02:00:00.000000Z"}


def test_an_incremental_window_runs_from_the_watermarks_to_now() -> None:
    window = plan_window(StartRequest(), MARKS, NOW)

    assert window == {"salesforce_from": MARKS["salesforce"], "salesforce_to": "2026-03-01T02:00:00.123Z",
                      "erp_from": MARKS["erp"], "erp_to": "2026-03-01T02:00:00.123456Z"}


def test_a_full_window_has_no_start_and_a_backfill_starts_at_since() -> None:
    full = plan_window(StartRequest(mode="full"), MARKS, NOW)
    backfill = plan_window(StartRequest(mode="backfill", since="2026-01-15T10:30:00+01:00"), MARKS, NOW)

    assert (full["salesforce_from"], full["erp_from"]) == (None, None)
    assert (backfill["salesforce_from"], backfill["erp_from"]) == ("2026-01-15T09:30:00.000Z",
                                                                   "2026-01-15T09:30:00.000000Z")
    assert backfill["erp_to"] == full["erp_to"] == "2026-03-01T02:00:00.123456Z"


def test_a_start_names_and_dates_the_run_by_the_injected_clock(stack, monkeypatch) -> None:
    monkeypatch.setenv("SYNC_WATERMARK_LAG_SECONDS", "60")
    container.reset()
    container.runs().now = lambda: NOW

    answer = stack.start()

    assert answer["status"] == "started"
    assert answer["run_id"].startswith("20260301T020000Z-")
    assert answer["window"]["erp_to"] == "2026-03-01T01:59:00.123456Z", "now minus the watermark lag"
    assert stack.run_item(answer["run_id"])["started_at"] == NOW.isoformat()
