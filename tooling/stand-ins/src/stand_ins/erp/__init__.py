"""A local ERP over plain HTTP: inventory and customers, with fault injection, for tests and the demo.

    with ErpServer() as erp:
        requests.get(f"{erp.url}/inventory/items/SKU-1001", timeout=2)
        erp.inject("503", count=2)

``python -m stand_ins.erp serve`` runs the same thing as a process; README.md beside this file holds the HTTP
contract, which the availability function's ERP adapter (functions/availability/availability/erp.py) follows.
"""

from __future__ import annotations

from types import EllipsisType

from stand_ins.kit import StandInService

from .customers import Customers
from .customers import register as register_customers
from .inventory import Inventory
from .inventory import register as register_inventory
from .server import FAULT_KINDS, ErpApp

__all__ = ["FAULT_KINDS", "ErpServer"]


class ErpServer(StandInService):
    """Starts the stand-in in a background thread; a context manager for tests (life cycle: stand_ins.kit)."""

    thread_name = "erp-stand-in"
    server_version = "ErpStandIn/1.0"
    app: ErpApp

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 latency_seconds: float = 0.0, jitter_seconds: float = 0.0):
        super().__init__(ErpApp(api_key, latency_seconds, jitter_seconds), host, port)
        self.inventory = Inventory()
        self.customers = Customers()
        register_inventory(self.app, self.inventory)
        register_customers(self.app, self.customers)
        from . import control
        control.register(self)

    @property
    def info(self) -> dict:
        """The start-up contract printed by ``python -m stand_ins.erp serve``."""
        return {**super().info, "api_key": self.app.api_key}

    def go_down(self) -> None:
        """Close the listening socket: connections are refused (ECONNREFUSED) until ``come_up``."""
        self.stop()

    def come_up(self) -> None:
        """Listen again on the same port, with the same state."""
        self.start()

    # -- test controls (the same operations as the /__control endpoints) ------------------------------------

    def inject(self, kind: str, count: int | EllipsisType | None = ..., *, method: str | None = None,
               path: str | None = None, delay_seconds: float | None = None) -> None:
        """Make the next ``count`` matching requests (``None``: all, until cleared) fail with ``kind``.
        ``count`` defaults to 1, and for ``down`` to ``None``, as on the HTTP control API."""
        assert self.app.faults is not None
        self.app.faults.add(kind, count, method, path, delay_seconds)

    def clear_faults(self) -> None:
        assert self.app.faults is not None
        self.app.faults.clear()

    def set_latency(self, seconds: float, jitter_seconds: float = 0.0) -> None:
        self.app.set_latency(seconds, jitter_seconds)

    def requests(self) -> list[dict]:
        return self.app.request_log.entries()

    def clear_requests(self) -> None:
        self.app.request_log.clear()

    def reset(self) -> None:
        """Seed data back, no faults, no latency, an empty request log."""
        with self.app.lock:
            self.clear_faults()
            self.inventory.reset()
            self.customers.reset()
        self.set_latency(0.0, 0.0)
        self.clear_requests()
