"""The ERP's control endpoints under ``/__control/``: the kit's faults, request log and reset, plus latency and
the customer counts (never faulted, never logged)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stand_ins.kit import control

from .server import ErpError, Reply, Request

if TYPE_CHECKING:
    from . import ErpServer


def register(erp: ErpServer) -> None:
    app = erp.app
    control.register(app, reset=erp.reset, lists=control.bare)

    def get_latency(req: Request) -> Reply:
        return Reply(200, {"seconds": app.latency_seconds, "jitter_seconds": app.jitter_seconds})

    def set_latency(req: Request) -> Reply:
        spec = req.json_object()
        seconds, jitter = (control.number(spec, name, 0, 0, 120, code="INVALID_LATENCY")
                           for name in ("seconds", "jitter_seconds"))
        erp.set_latency(seconds, jitter)
        return get_latency(req)

    def customer_counts(req: Request) -> Reply:
        """How many customers, linked to Salesforce, active: checks a large sync without paging through it."""
        with app.lock:
            customers = list(erp.customers.by_id.values())
        return Reply(200, {"customers": len(customers),
                           "linked": sum(1 for c in customers if c.salesforce_id),
                           "active": sum(1 for c in customers if c.active)})

    app.router.add("GET", "/__control/latency", get_latency)
    app.router.add("PUT", "/__control/latency", set_latency)
    app.router.add("GET", "/__control/customers/counts", customer_counts)


__all__ = ["ErpError", "register"]
