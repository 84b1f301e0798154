"""Pattern 1, Request and Reply: the availability API under the ERP faults of the matrix. The function only
reads (nothing to write twice) and never calls Salesforce, so "no record lost" means: every item asked is
answered, or the whole request fails with a JSON error inside Salesforce's 10 s callout limit (never a
partial answer passed off as complete), and a later request answers every item. Each failure shows in the
ErpFailures metric and an "ERP failure" log line naming its code."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace

import pytest

from tests.functions.availability import conftest as availability_fixtures

erp_server = availability_fixtures.erp_server
erp = availability_fixtures.erp
secret_arn = availability_fixtures.secret_arn
handler_module = availability_fixtures.handler_module
configure = availability_fixtures.configure
invoke = availability_fixtures.invoke
erp_calls = availability_fixtures.erp_calls

SKUS = [f"SKU-10{n:02d}" for n in range(1, 11)]
BATCH = {"items": [{"sku": SKUS[n % 10], "quantity": n + 1} for n in range(50)]}  # the largest callout


@dataclass
class ManualClock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def warm(invoke, erp) -> None:
    """One call reads the ERP key from Secrets Manager; later timings then show the ERP alone."""
    invoke("GET", "/products/SKU-1010/availability")
    erp.clear_requests()


def failure_codes(observed) -> list[str]:
    return [r["code"] for r in observed.logs("ERP failure")]


def answers_everything(invoke) -> None:
    reply = invoke("POST", "/availability", body=BATCH)
    assert reply.status == 200
    assert [(r["sku"], r["requested_quantity"]) for r in reply.body["results"]] == \
        [(item["sku"], item["quantity"]) for item in BATCH["items"]]
    assert reply.body["stale"] is False


def test_an_erp_slower_than_its_timeouts_is_a_504_inside_the_budget(invoke, erp, erp_calls, observed):
    warm(invoke, erp)
    erp.inject("hang", count=None, delay_seconds=10)
    started = time.monotonic()

    reply = invoke("POST", "/availability", body=BATCH)

    assert (reply.status, reply.body["error"]) == (504, "ERP_TIMEOUT")
    assert time.monotonic() - started < 2.0 + 0.5  # AVAILABILITY_BUDGET_SECONDS, and a loaded machine's slack
    assert "results" not in reply.body
    assert failure_codes(observed) == ["ERP_TIMEOUT"]
    assert observed.metrics()["ErpFailures"] == 1
    erp.clear_faults()
    answers_everything(invoke)


def test_a_dropped_connection_is_retried_and_a_dropping_erp_is_a_503(invoke, configure, erp, erp_calls, observed):
    configure(ERP_READ_TIMEOUT_SECONDS="2", AVAILABILITY_BUDGET_SECONDS="6")  # drops are instant: no need to hurry
    warm(invoke, erp)
    erp.inject("drop", count=1)
    answers_everything(invoke)  # a read is safe to send again
    assert len(erp_calls()) == 2

    erp.inject("drop", count=None)
    reply = invoke("POST", "/availability", body=BATCH)

    assert (reply.status, reply.body["error"]) == (503, "ERP_UNAVAILABLE")
    assert failure_codes(observed) == ["ERP_UNAVAILABLE"]
    assert observed.metrics()["ErpFailures"] == 1


@pytest.fixture
def manual_clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The breaker and the cache on a clock the test moves (built with it on the next cold start)."""
    from availability import application
    from availability.breaker import CircuitBreaker
    from availability.cache import StaleCache

    clock = ManualClock()
    monkeypatch.setattr(application, "CircuitBreaker", functools.partial(CircuitBreaker, clock=clock))
    monkeypatch.setattr(application, "StaleCache", functools.partial(StaleCache, clock=clock))
    application.reset()
    return clock


def test_erp_down_is_a_fast_503_then_the_circuit_opens_and_stale_answers_are_marked(invoke, configure, erp,
                                                                                     erp_calls, observed,
                                                                                     manual_clock):
    configure(AVAILABILITY_CACHE_TTL_SECONDS="0.05", AVAILABILITY_STALE_IF_ERROR_SECONDS="60",
              BREAKER_RESET_SECONDS="0.3")
    fresh = invoke("GET", "/products/SKU-1001/availability").body
    manual_clock.advance(0.1)  # past the cache's TTL
    erp.go_down()  # connections refused

    unknown = invoke("GET", "/products/SKU-1002/availability")  # never read: nothing to fall back on
    stale = invoke("GET", "/products/SKU-1001/availability")  # read before: served stale
    calls = len(erp_calls())
    open_circuit = invoke("GET", "/products/SKU-1003/availability")

    assert (unknown.status, unknown.body["error"]) == (503, "ERP_UNAVAILABLE")
    assert (stale.status, stale.body["stale"], stale.body["as_of"]) == (200, True, fresh["as_of"])
    assert (open_circuit.status, open_circuit.body["error"]) == (503, "ERP_CIRCUIT_OPEN")
    assert open_circuit.headers["Retry-After"] == "1"
    assert len(erp_calls()) == calls  # the open circuit spared the ERP
    metrics = observed.metrics()
    assert (metrics["ErpFailures"], metrics["StaleAnswers"], metrics["ErpCircuitOpened"]) == (2, 1, 1)
    assert observed.logs("ERP circuit opened")

    erp.come_up()
    manual_clock.advance(0.35)  # BREAKER_RESET_SECONDS: the next call is the trial that closes the circuit
    answers_everything(invoke)


def test_running_out_of_lambda_time_in_the_middle_of_a_batch_fails_it_whole(invoke, configure, erp, lambda_context,
                                                                            observed):
    configure(ERP_READ_TIMEOUT_SECONDS="20", AVAILABILITY_BUDGET_SECONDS="20")
    warm(invoke, erp)
    erp.set_latency(3)
    started = time.monotonic()

    reply = invoke("POST", "/availability", body=BATCH, context=replace(lambda_context, timeout_ms=1_200))

    assert (reply.status, reply.body["error"]) == (504, "ERP_TIMEOUT")
    assert time.monotonic() - started < 1.2  # within the Lambda's time: 1.2 s left, 0.5 s of it kept to answer
    assert failure_codes(observed) == ["ERP_TIMEOUT"]
    assert observed.metrics()["ErpFailures"] == 1
    erp.set_latency(0)
    answers_everything(invoke)
