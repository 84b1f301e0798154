"""The circuit breaker's and the cache's timing rules, on a fake clock."""

from __future__ import annotations

from availability.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from availability.cache import StaleCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_at_the_threshold_of_consecutive_failures():
    clock, opened = Clock(), []
    breaker = CircuitBreaker(3, 30, clock, on_open=lambda: opened.append(clock.now))
    assert [breaker.record_failure(), breaker.record_failure()] == [False, False]
    breaker.record_success()  # a success resets the count
    assert [breaker.record_failure() for _ in range(3)] == [False, False, True]
    assert breaker.state == OPEN
    assert breaker.allow() is False
    assert opened == [100.0]
    clock.now += 10.2
    assert breaker.retry_after() == 20


def test_breaker_allows_one_trial_when_half_open():
    clock = Clock()
    breaker = CircuitBreaker(1, 30, clock)
    breaker.record_failure()
    clock.now += 30
    assert breaker.state == HALF_OPEN
    assert breaker.allow() is True
    assert breaker.allow() is False  # a second caller waits for the trial's outcome
    breaker.record_success()
    assert breaker.state == CLOSED
    assert breaker.allow() is True


def test_a_failed_trial_reopens_for_a_full_period():
    clock = Clock()
    breaker = CircuitBreaker(2, 30, clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 31
    assert breaker.allow() is True
    assert breaker.record_failure() is True
    assert breaker.state == OPEN
    clock.now += 29
    assert breaker.allow() is False
    clock.now += 1
    assert breaker.allow() is True


def test_cache_is_fresh_for_ttl_then_stale_for_max_staleness():
    clock = Clock()
    cache: StaleCache[str] = StaleCache(30, 300, clock=clock)
    cache.put("SKU-1", "level")
    clock.now += 29.9
    assert cache.fresh("SKU-1") == "level"
    clock.now += 0.1
    assert cache.fresh("SKU-1") is None
    assert cache.stale("SKU-1") == "level"
    clock.now += 300
    assert cache.stale("SKU-1") is None


def test_cache_off_stores_nothing_and_size_is_bounded():
    clock = Clock()
    off: StaleCache[str] = StaleCache(0, 0, clock=clock)
    off.put("a", "x")
    assert off.stale("a") is None
    small: StaleCache[int] = StaleCache(30, 0, max_entries=2, clock=clock)
    for i, key in enumerate("abc"):
        small.put(key, i)
    assert (small.fresh("a"), small.fresh("b"), small.fresh("c")) == (None, 1, 2)
