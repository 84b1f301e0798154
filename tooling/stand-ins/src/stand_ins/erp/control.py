"""Control endpoints under ``/__control/``: faults, latency, the request log and a reset (never faulted)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .server import ErpError, Reply, Request, make_fault

if TYPE_CHECKING:
    from . import ErpServer


def register(erp: ErpServer) -> None:
    app = erp.app

    def add_fault(req: Request) -> Reply:
        spec = req.json_object()
        unknown = sorted(set(spec) - {"kind", "count", "method", "path", "delay_seconds"})
        if unknown:
            raise ErpError(400, "INVALID_FAULT", f"unknown field(s): {', '.join(unknown)}")
        default_count = None if spec.get("kind") == "down" else 1
        fault = make_fault(spec.get("kind"), spec.get("count", default_count), spec.get("method"),
                           spec.get("path"), spec.get("delay_seconds"))
        with app.lock:
            app.faults.append(fault)
        return Reply(201, fault.describe())

    def list_faults(req: Request) -> Reply:
        with app.lock:
            return Reply(200, [f.describe() for f in app.faults if f.count is None or f.count > 0])

    def clear_faults(req: Request) -> Reply:
        erp.clear_faults()
        return Reply(204)

    def get_latency(req: Request) -> Reply:
        return Reply(200, {"seconds": app.latency_seconds, "jitter_seconds": app.jitter_seconds})

    def set_latency(req: Request) -> Reply:
        spec = req.json_object()
        seconds, jitter = spec.get("seconds", 0), spec.get("jitter_seconds", 0)
        for name, value in (("seconds", seconds), ("jitter_seconds", jitter)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 120:
                raise ErpError(400, "INVALID_LATENCY", f"{name} must be a number from 0 to 120")
        erp.set_latency(float(seconds), float(jitter))
        return get_latency(req)

    def requests(req: Request) -> Reply:
        return Reply(200, erp.requests())

    def clear_requests(req: Request) -> Reply:
        erp.clear_requests()
        return Reply(204)

    def reset(req: Request) -> Reply:
        erp.reset()
        return Reply(204)

    def customer_counts(req: Request) -> Reply:
        """How many customers, linked to Salesforce, active: checks a large sync without paging through it."""
        with app.lock:
            customers = list(erp.customers.by_id.values())
        return Reply(200, {"customers": len(customers),
                           "linked": sum(1 for c in customers if c.salesforce_id),
                           "active": sum(1 for c in customers if c.active)})

    router = app.router
    router.add("POST", "/__control/faults", add_fault)
    router.add("GET", "/__control/faults", list_faults)
    router.add("DELETE", "/__control/faults", clear_faults)
    router.add("GET", "/__control/latency", get_latency)
    router.add("PUT", "/__control/latency", set_latency)
    router.add("GET", "/__control/requests", requests)
    router.add("DELETE", "/__control/requests", clear_requests)
    router.add("POST", "/__control/reset", reset)
    router.add("GET", "/__control/customers/counts", customer_counts)
