"""ERP failures: 502 / 503 / 504 with a JSON body, retries only where safe and inside the latency budget,
the circuit breaker opening and closing, the cache and stale-if-error.

The circuit breaker and the cache run on a manual clock (``clock.advance``) and the ERP client's backoff
waits are recorded, not slept; the latency budget is real time, because the ERP stand-in's latency is."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field, replace

import pytest

ONE = "/products/SKU-1001/availability"


@dataclass
class ManualClock:
    now: float = 1_000.0
    waits: list[float] = field(default_factory=list)  # the ERP client's backoff waits

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> ManualClock:
    """The service's breaker and cache on a manual clock and its ERP client's sleeps recorded: built with
    them on the next (cold) start."""
    from availability import application
    from availability.breaker import CircuitBreaker
    from availability.cache import StaleCache
    from availability.erp import ErpInventoryClient

    manual = ManualClock()
    monkeypatch.setattr(application, "CircuitBreaker", functools.partial(CircuitBreaker, clock=manual))
    monkeypatch.setattr(application, "StaleCache", functools.partial(StaleCache, clock=manual))
    monkeypatch.setattr(application, "ErpInventoryClient", functools.partial(ErpInventoryClient,
                                                                             sleep=manual.waits.append))
    application.reset()
    return manual


def test_erp_500_is_502_and_not_retried(invoke, erp, erp_calls):
    erp.inject("500")
    reply = invoke("GET", ONE)
    assert (reply.status, reply.body["error"]) == (502, "ERP_BAD_RESPONSE")
    assert set(reply.body) == {"error", "message"}
    assert len(erp_calls()) == 1


def test_erp_answer_that_is_not_json_is_502(invoke, erp):
    erp.inject("malformed", count=None)
    reply = invoke("POST", "/availability", body={"items": [{"sku": "SKU-1001"}, {"sku": "SKU-1002"}]})
    assert (reply.status, reply.body["error"]) == (502, "ERP_BAD_RESPONSE")


@pytest.mark.parametrize("kind", ["503", "429", "drop"])
def test_one_transient_erp_failure_is_retried_within_the_call(invoke, configure, erp, erp_calls, clock, kind):
    configure(AVAILABILITY_BUDGET_SECONDS="4")  # room for the 1 s Retry-After of 503 and 429
    erp.inject(kind)
    reply = invoke("GET", ONE)
    assert reply.status == 200
    assert erp_calls() == [("GET", "/inventory/items/SKU-1001")] * 2
    [wait] = clock.waits
    assert wait == 1.0 if kind != "drop" else wait <= 0.2  # the Retry-After, or a jittered backoff


def test_erp_down_is_a_fast_503_with_retry_after(invoke, erp, erp_calls):
    warm_up(invoke, erp)
    erp.inject("down")  # 503 with Retry-After: 30, until cleared
    started = time.monotonic()
    reply = invoke("GET", ONE)
    assert time.monotonic() - started < 0.5
    assert (reply.status, reply.body["error"]) == (503, "ERP_UNAVAILABLE")
    assert reply.headers["Retry-After"] == "30"
    assert len(erp_calls()) == 1  # a 30 s Retry-After does not fit the budget: no retry


def test_erp_refusing_connections_is_503(invoke, erp):
    erp.go_down()
    reply = invoke("POST", "/availability", body={"items": [{"sku": "SKU-1001"}]})
    assert (reply.status, reply.body["error"]) == (503, "ERP_UNAVAILABLE")


def warm_up(invoke, erp) -> None:
    """A first call reads the API key from Secrets Manager (cached afterwards), so timings show the ERP alone.
    Its answer does not matter: with a tiny budget on a loaded machine the cold start alone may use it up."""
    invoke("GET", "/products/SKU-1010/availability")
    erp.clear_requests()


def test_hanging_erp_is_504_inside_the_budget(invoke, erp, erp_calls):
    warm_up(invoke, erp)
    erp.inject("hang", count=None, delay_seconds=10)
    started = time.monotonic()
    reply = invoke("GET", ONE)
    elapsed = time.monotonic() - started
    assert (reply.status, reply.body["error"]) == (504, "ERP_TIMEOUT")
    assert elapsed < 2.0  # AVAILABILITY_BUDGET_SECONDS
    # read timeout 0.4 s, then one retry because a whole attempt (0.3 + 0.4 s) still fitted the budget
    assert len(erp_calls()) == 2


def test_budget_caps_a_slow_erp_even_with_a_long_read_timeout(invoke, configure, erp):
    configure(ERP_READ_TIMEOUT_SECONDS="20", AVAILABILITY_BUDGET_SECONDS="0.8")
    warm_up(invoke, erp)
    erp.set_latency(5)
    started = time.monotonic()
    reply = invoke("GET", ONE)
    elapsed = time.monotonic() - started
    assert reply.status == 504
    assert 0.7 < elapsed < 1.5  # the 0.8 s budget, not the 20 s read timeout nor the 5 s latency


def test_budget_is_cut_to_the_lambda_time_left(invoke, configure, erp, lambda_context):
    configure(ERP_READ_TIMEOUT_SECONDS="20", AVAILABILITY_BUDGET_SECONDS="20")
    warm_up(invoke, erp)
    erp.set_latency(5)
    started = time.monotonic()
    reply = invoke("GET", ONE, context=replace(lambda_context, timeout_ms=1200))
    assert reply.status == 504
    assert time.monotonic() - started < 1.0  # 1.2 s left minus the 0.5 s safety margin


def test_circuit_opens_after_repeated_failures_and_closes_after_a_good_trial(invoke, erp, erp_calls, clock):
    erp.inject("500", count=2)
    assert [invoke("GET", ONE).status for _ in range(2)] == [502, 502]  # threshold 2
    calls = len(erp_calls())

    started = time.monotonic()
    reply = invoke("GET", ONE)
    assert (reply.status, reply.body["error"]) == (503, "ERP_CIRCUIT_OPEN")
    assert time.monotonic() - started < 0.1
    assert reply.headers["Retry-After"] == "1"
    assert len(erp_calls()) == calls  # the ERP was not called

    clock.advance(0.5)
    assert invoke("GET", ONE).body["error"] == "ERP_CIRCUIT_OPEN"  # not yet
    clock.advance(0.5)  # BREAKER_RESET_SECONDS: one trial call goes through, succeeds, the circuit closes
    assert invoke("GET", ONE).status == 200
    assert invoke("GET", ONE).status == 200
    assert len(erp_calls()) == calls + 2


def test_a_failed_trial_opens_the_circuit_again(invoke, erp, erp_calls, clock):
    erp.inject("500", count=3)
    assert [invoke("GET", ONE).status for _ in range(2)] == [502, 502]
    clock.advance(1.0)
    assert invoke("GET", ONE).status == 502  # the trial call fails
    calls = len(erp_calls())
    assert invoke("GET", ONE).body["error"] == "ERP_CIRCUIT_OPEN"
    assert len(erp_calls()) == calls


def test_unknown_skus_and_bad_input_do_not_open_the_circuit(invoke, erp):
    for _ in range(4):
        assert invoke("GET", "/products/SKU-0404/availability").status == 404
        assert invoke("GET", ONE, query={"quantity": "0"}).status == 400
    assert invoke("GET", ONE).status == 200


def test_cache_answers_within_its_ttl_without_calling_the_erp(invoke, configure, erp, erp_calls, clock):
    configure(AVAILABILITY_CACHE_TTL_SECONDS="1")
    first = invoke("GET", ONE).body
    erp.inventory.set_stock("SKU-1001", "WH-LON", 0, 0)
    again = invoke("POST", "/availability", body={"items": [{"sku": "SKU-1001", "quantity": 3}]}).body
    assert again["results"][0]["quantity_available"] == first["quantity_available"]
    assert again["results"][0]["stale"] is False
    assert len(erp_calls()) == 1
    clock.advance(0.5)
    assert invoke("GET", ONE).body["quantity_available"] == first["quantity_available"]
    assert len(erp_calls()) == 1
    clock.advance(0.5)  # AVAILABILITY_CACHE_TTL_SECONDS
    assert invoke("GET", ONE).body["quantity_available"] == first["quantity_available"] - 100
    assert len(erp_calls()) == 2


def test_stale_if_error_answers_with_stale_true_and_the_old_as_of(invoke, configure, erp, clock):
    configure(AVAILABILITY_CACHE_TTL_SECONDS="0.05", AVAILABILITY_STALE_IF_ERROR_SECONDS="60")
    fresh = invoke("POST", "/availability", body={"items": [{"sku": "SKU-1001"}, {"sku": "SKU-1002"}]}).body
    clock.advance(0.1)
    erp.inject("down")
    one = invoke("GET", ONE, query={"quantity": "500"})
    assert one.status == 200
    assert one.body["stale"] is True
    assert one.body["as_of"] == fresh["results"][0]["as_of"]
    assert one.body["available"] is False  # computed for the new quantity from the cached stock
    many = invoke("POST", "/availability", body={"items": [{"sku": "SKU-1002"}, {"sku": "SKU-1001"}]}).body
    assert many["stale"] is True
    assert [r["stale"] for r in many["results"]] == [True, True]
    # a SKU that was never cached cannot be answered: the failure shows (by now the two failed calls above
    # have opened the circuit)
    reply = invoke("POST", "/availability", body={"items": [{"sku": "SKU-1001"}, {"sku": "SKU-1003"}]})
    assert (reply.status, reply.body["error"]) == (503, "ERP_CIRCUIT_OPEN")


def test_stale_if_error_also_covers_an_open_circuit(invoke, configure, erp, erp_calls, clock):
    configure(AVAILABILITY_CACHE_TTL_SECONDS="0.01", AVAILABILITY_STALE_IF_ERROR_SECONDS="60")
    invoke("GET", ONE)
    erp.inject("500", count=None)
    clock.advance(0.02)
    assert invoke("GET", "/products/SKU-1002/availability").status == 502
    assert invoke("GET", "/products/SKU-1002/availability").status == 502  # circuit now open
    calls = len(erp_calls())
    reply = invoke("GET", ONE)
    assert (reply.status, reply.body["stale"]) == (200, True)
    assert len(erp_calls()) == calls


def test_no_stale_answer_beyond_the_maximum_staleness(invoke, configure, erp, clock):
    configure(AVAILABILITY_CACHE_TTL_SECONDS="0.05", AVAILABILITY_STALE_IF_ERROR_SECONDS="0.1")
    assert invoke("GET", ONE).status == 200
    clock.advance(0.0625)
    erp.inject("down", count=1)
    assert invoke("GET", ONE).body["stale"] is True  # within the maximum staleness (ttl + 0.1 s)
    clock.advance(0.125)
    erp.inject("down")
    assert invoke("GET", ONE).status == 503
