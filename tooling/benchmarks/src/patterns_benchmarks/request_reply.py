"""Request and Reply (pattern 1): what the availability function adds over the ERP's own response time.

The ERP stand-in runs as a child process with a fixed latency. Each round makes the same ERP read twice,
side by side: directly over HTTP with a keep-alive session (the baseline: the ERP's own response time as a
client sees it) and through the warm handler, invoked in this process with an API Gateway proxy event (the
template's environment, but the cache's fresh TTL at 0 so that every call really reaches the ERP). Both are
reported as p50 / p99 with the difference (the overhead) and the ratio.

Then the ERP process is stopped: the calls that fail until the circuit breaker opens, and the answers with
the breaker open, for a SKU read before (answered stale from the cache, 200) and for one never read (503
with Retry-After), are timed as well. A cache hit (the template's 30 s TTL) is measured for comparison.

X-Ray is off (no daemon locally); logs and EMF metrics are written, to /dev/null.

    python -m patterns_benchmarks.request_reply [--calls 1000] [--erp-latency-ms 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import requests

from patterns_benchmarks.harness import (
    Child,
    Context,
    child,
    environment,
    fresh_aws,
    import_paths,
    p50_p99,
    quiet,
    table,
    template_environment,
    timed_ms,
)

SKUS = [f"SKU-{n}" for n in range(1001, 1011)]  # the ERP stand-in's seed data
NEVER_READ = "SKU-9999"
WARM_UP = 20


def proxy_event(sku: str, quantity: int = 1) -> dict[str, Any]:
    """GET /products/{sku}/availability as API Gateway's REST proxy integration delivers it."""
    path, resource = f"/products/{sku}/availability", "/products/{sku}/availability"
    return {"resource": resource, "path": path, "httpMethod": "GET",
            "headers": {"Accept": "application/json"}, "multiValueHeaders": {"Accept": ["application/json"]},
            "queryStringParameters": {"quantity": str(quantity)},
            "multiValueQueryStringParameters": {"quantity": [str(quantity)]},
            "pathParameters": {"sku": sku}, "stageVariables": None,
            "requestContext": {"resourcePath": resource, "httpMethod": "GET", "stage": "prod",
                               "requestId": "bench", "path": f"/prod{path}", "accountId": "123456789012",
                               "identity": {"sourceIp": "13.108.0.1"}},
            "body": None, "isBase64Encoded": False}


def run(calls: int = 1000, erp_latency_ms: float = 10.0, down_calls: int = 200) -> dict[str, Any]:
    import_paths("availability")
    results: dict[str, Any] = {"calls": calls, "erp_latency_ms": erp_latency_ms, "down_calls": down_calls}
    with child("stand_ins.erp", "--latency", str(erp_latency_ms / 1000)) as erp, fresh_aws():
        env = template_environment("AvailabilityFunction", ERP_BASE_URL=erp["url"],
                                   AVAILABILITY_CACHE_TTL_SECONDS="0")
        with environment(env):
            from availability import handler

            handler.reset()
            try:
                results.update(_measure(handler, erp, calls, down_calls))
            finally:
                handler.reset()
    return results


class ErpCallClock:
    """Times the handler's own ERP call (``ErpInventoryClient.lookup``), so that what the function adds can also
    be read call by call: the invocation's time minus the ERP call inside it."""

    def __init__(self) -> None:
        self.last_ms = 0.0

    @contextlib.contextmanager
    def running(self) -> Iterator[ErpCallClock]:
        from availability.erp import ErpInventoryClient

        original = ErpInventoryClient.lookup
        clock = self

        def lookup(client: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(client, *args, **kwargs)
            finally:
                clock.last_ms = timed_ms(started)

        ErpInventoryClient.lookup = lookup  # type: ignore[method-assign]
        try:
            yield self
        finally:
            ErpInventoryClient.lookup = original  # type: ignore[method-assign]


def _invoke(handler: Any, sku: str) -> tuple[float, int, dict[str, Any]]:
    started = time.perf_counter()
    reply = handler.handler(proxy_event(sku), Context("availability", timeout_seconds=8))  # the template's Timeout
    elapsed = timed_ms(started)
    return elapsed, reply["statusCode"], json.loads(reply["body"])


def _measure(handler: Any, erp: Child, calls: int, down_calls: int) -> dict[str, Any]:
    erp_url = erp["url"]
    direct = requests.Session()
    direct.trust_env = False
    out: dict[str, Any] = {}
    with quiet():
        for n in range(WARM_UP):  # connections opened, code paths warm
            direct.get(f"{erp_url}/inventory/items/{SKUS[n % len(SKUS)]}", timeout=5).raise_for_status()
            _invoke(handler, SKUS[n % len(SKUS)])
        baseline: list[float] = []
        through: list[float] = []
        own: list[float] = []
        with ErpCallClock().running() as erp_call:
            for n in range(calls):
                sku = SKUS[n % len(SKUS)]
                started = time.perf_counter()
                response = direct.get(f"{erp_url}/inventory/items/{sku}", timeout=5)
                baseline.append(timed_ms(started))
                response.raise_for_status()
                erp_call.last_ms = 0.0
                elapsed, status, body = _invoke(handler, sku)
                through.append(elapsed)
                own.append(elapsed - erp_call.last_ms)
                if status != 200 or body["stale"] or not erp_call.last_ms:
                    raise RuntimeError(f"a warm call did not reach the ERP: {status} {body}")
            if status != 200 or body["stale"]:
                raise RuntimeError(f"a warm call did not reach the ERP: {status} {body}")
        out["direct_p50_ms"], out["direct_p99_ms"] = p50_p99(baseline)
        out["handler_p50_ms"], out["handler_p99_ms"] = p50_p99(through)
        out["own_p50_ms"], out["own_p99_ms"] = p50_p99(own)

        # The template's own cache (30 s fresh): a second read of the same SKU never reaches the ERP.
        with environment({"AVAILABILITY_CACHE_TTL_SECONDS": "30"}):
            handler.reset()
            _invoke(handler, SKUS[0])
            cached = [_invoke(handler, SKUS[0])[0] for _ in range(max(10, calls // 5))]
            out["cached_p50_ms"], out["cached_p99_ms"] = p50_p99(cached)
            handler.reset()
        for sku in SKUS:  # the stale-if-error copies the down phase answers from
            _invoke(handler, sku)

        direct.close()
        erp.stop()  # the ERP down: connections refused
        until_open, open_stale, open_unknown = [], [], []
        closed_statuses: Counter[str] = Counter()
        breaker = handler.get_service().breaker
        while breaker.state != "open":
            elapsed, status, body = _invoke(handler, NEVER_READ)
            until_open.append(elapsed)
            closed_statuses[f"{status} {body.get('error', '')}".strip()] += 1
            if len(until_open) > 50:
                raise RuntimeError("the circuit breaker never opened")
        out["calls_to_open"] = len(until_open)
        out["down_closed_mean_ms"] = sum(until_open) / len(until_open)
        out["down_closed_answers"] = dict(closed_statuses)
        stale_statuses: Counter[str] = Counter()
        unknown_statuses: Counter[str] = Counter()
        for n in range(down_calls):
            elapsed, status, body = _invoke(handler, SKUS[n % len(SKUS)])
            open_stale.append(elapsed)
            stale_statuses[f"{status}{' stale' if body.get('stale') else ''}"] += 1
            elapsed, status, body = _invoke(handler, NEVER_READ)
            open_unknown.append(elapsed)
            unknown_statuses[f"{status} {body.get('error', '')}".strip()] += 1
        out["open_stale_p50_ms"], out["open_stale_p99_ms"] = p50_p99(open_stale)
        out["open_unknown_p50_ms"], out["open_unknown_p99_ms"] = p50_p99(open_unknown)
        out["open_stale_answers"] = dict(stale_statuses)
        out["open_unknown_answers"] = dict(unknown_statuses)
        out["breaker_state_after"] = breaker.state
    return out


def report(results: dict[str, Any]) -> str:
    r = results
    over50, over99 = r["handler_p50_ms"] - r["direct_p50_ms"], r["handler_p99_ms"] - r["direct_p99_ms"]
    rows = [
        (f"ERP read, direct HTTP (baseline; ERP latency {r['erp_latency_ms']:g} ms)",
         f"{r['direct_p50_ms']:.2f} ms", f"{r['direct_p99_ms']:.2f} ms", "1.00x"),
        ("the same read through the warm handler (proxy event, cache bypassed)",
         f"{r['handler_p50_ms']:.2f} ms", f"{r['handler_p99_ms']:.2f} ms",
         f"{r['handler_p50_ms'] / r['direct_p50_ms']:.2f}x"),
        ("overhead added by the function (handler - direct, per percentile)", f"{over50:+.2f} ms",
         f"{over99:+.2f} ms", ""),
        ("the function's time outside its ERP adapter (each invocation minus `ErpInventoryClient.lookup`)",
         f"{r['own_p50_ms']:.2f} ms",
         f"{r['own_p99_ms']:.2f} ms", ""),
        ("cache hit (template TTL 30 s; no ERP call)", f"{r['cached_p50_ms']:.2f} ms", f"{r['cached_p99_ms']:.2f} ms",
         f"{r['cached_p50_ms'] / r['direct_p50_ms']:.2f}x"),
        (f"ERP down, breaker still closed (mean of the {r['calls_to_open']} calls that open it): "
         f"{_answers(r['down_closed_answers'])}",
         f"{r['down_closed_mean_ms']:.2f} ms", "", ""),
        (f"ERP down, breaker open, SKU read before: {_answers(r['open_stale_answers'])}",
         f"{r['open_stale_p50_ms']:.2f} ms", f"{r['open_stale_p99_ms']:.2f} ms",
         f"{r['open_stale_p50_ms'] / r['direct_p50_ms']:.2f}x"),
        (f"ERP down, breaker open, SKU never read: {_answers(r['open_unknown_answers'])}",
         f"{r['open_unknown_p50_ms']:.2f} ms", f"{r['open_unknown_p99_ms']:.2f} ms",
         f"{r['open_unknown_p50_ms'] / r['direct_p50_ms']:.2f}x"),
    ]
    return (f"{r['calls']:,} warm calls each way, interleaved; {r['down_calls']:,} calls per breaker-open case.\n\n"
            + table(rows, ("measurement", "p50", "p99", "x direct p50")))


def _answers(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} x{n:,}" for status, n in sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m patterns_benchmarks.request_reply")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--erp-latency-ms", type=float, default=10.0)
    args = parser.parse_args(argv)
    print(report(run(args.calls, args.erp_latency_ms)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
