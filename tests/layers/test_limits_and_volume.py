"""Sforce-Limit-Info parsing and metric, the volume rule, the time budget and backoff."""

from __future__ import annotations

import math
import statistics

import pytest

from salesforce_access import DEFAULT_BULK_THRESHOLD, ApiUsage, RetryPolicy, choose_api, parse_limit_info
from salesforce_access.budget import Budget, PollPolicy
from salesforce_access.limits import UsageTracker
from salesforce_access.observability import metrics

from .conftest import LambdaContext, ManualClock


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("api-usage=18/5000", ApiUsage(18, 5000)),
        ("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)", ApiUsage(25, 5000)),
        ("api-usage=10018/100000; api-bursts=1/750", ApiUsage(10018, 100000)),
        ("per-app-api-usage=17/250(appName=x)", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_limit_info(header, expected) -> None:
    assert parse_limit_info(header) == expected


def test_usage_share() -> None:
    assert ApiUsage(12000, 15000).share == pytest.approx(0.8)
    assert ApiUsage(1, 0).share == 1.0


def test_tracker_records_usage_and_emits_metrics() -> None:
    metrics.clear_metrics()
    ticks = iter([100.0, 160.0])
    tracker = UsageTracker(clock=lambda: next(ticks))
    assert tracker.usage is None
    assert tracker.age() is None
    tracker.record("api-usage=300/15000")
    assert tracker.usage == ApiUsage(300, 15000)
    assert tracker.age() == 60.0
    assert metrics.metric_set["SalesforceApiRequestsUsed"]["Value"] == [300]
    assert metrics.metric_set["SalesforceApiUsagePercent"]["Value"] == [2.0]
    metrics.clear_metrics()


def test_volume_rule(monkeypatch) -> None:
    assert DEFAULT_BULK_THRESHOLD == 2000
    assert choose_api(0) == "collections"
    assert choose_api(2000) == "collections"
    assert choose_api(2001) == "bulk"
    assert choose_api(500, threshold=100) == "bulk"
    monkeypatch.setenv("SALESFORCE_BULK_THRESHOLD", "10000")
    assert choose_api(5000) == "collections"
    with pytest.raises(ValueError, match="record_count"):
        choose_api(-1)


def test_budget_from_context_keeps_the_safety_margin() -> None:
    clock = ManualClock()
    budget = Budget.from_context(LambdaContext(remaining_ms=10_000, clock=clock), safety_margin=3.0, clock=clock)
    assert budget.remaining() == 7.0
    assert budget.allows(7.0)
    assert not budget.allows(7.5)
    clock.sleep(2.5)
    assert budget.remaining() == 4.5
    clock.sleep(10.0)
    assert budget.remaining() == 0.0  # never negative
    assert Budget.from_context(LambdaContext(remaining_ms=1_000), safety_margin=3.0).remaining() == 0.0
    assert math.isinf(Budget(None).remaining())


def test_backoff_is_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    assert policy.delay(1, rand=lambda low, high: high) == 0.5
    assert policy.delay(3, rand=lambda low, high: high) == 2.0
    assert policy.delay(10, rand=lambda low, high: high) == 4.0  # capped
    assert policy.delay(3, rand=lambda low, high: low) == 0.0  # full jitter starts at zero
    samples = [policy.delay(3) for _ in range(500)]
    assert 0.0 <= min(samples) < 0.3
    assert 1.7 < max(samples) <= 2.0
    assert 0.8 < statistics.mean(samples) < 1.2


def test_poll_delays_grow_to_the_cap() -> None:
    poll = PollPolicy(initial=1.0, max_delay=10.0, factor=2.0)
    assert 0.5 <= poll.delay(0) <= 1.0
    assert 4.0 <= poll.delay(3) <= 8.0
    assert 5.0 <= poll.delay(20) <= 10.0


def test_the_budget_shortens_timeouts_but_never_lengthens_them() -> None:
    from salesforce_access.budget import Timeouts
    from salesforce_access.transport import SalesforceSession

    session = SalesforceSession(usage=UsageTracker(), budget=lambda: Budget(None), timeouts=Timeouts(3.0, 30.0))
    assert session._timeout(Budget(None), None) == (3.0, 30.0)
    connect, read = session._timeout(Budget.seconds(10.0), None)
    assert connect == 3.0
    assert 9.5 < read <= 10.0
    assert session._timeout(Budget.seconds(0.01), None) == (0.5, 0.5)  # a last attempt still gets a floor
    short = SalesforceSession(usage=UsageTracker(), budget=lambda: Budget(None), timeouts=Timeouts(0.2, 0.3))
    assert short._timeout(Budget.seconds(0.01), None) == (0.2, 0.3)  # the floor never raises a shorter setting
