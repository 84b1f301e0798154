"""A local ERP over plain HTTP: inventory and customers, with fault injection, for tests and the demo.

    with ErpServer() as erp:
        requests.get(f"{erp.url}/inventory/items/SKU-1001", timeout=2)
        erp.inject("503", count=2)

``python -m stand_ins.erp serve`` runs the same thing as a process; README.md beside this file holds the HTTP
contract, which the availability function's ERP adapter (functions/availability/availability/erp.py) follows.
"""

from __future__ import annotations

import threading
from types import EllipsisType

from .customers import Customers
from .customers import register as register_customers
from .inventory import Inventory
from .inventory import register as register_inventory
from .server import FAULT_KINDS, ErpApp, ErpHttpServer, make_fault, make_server

__all__ = ["FAULT_KINDS", "ErpServer"]


class ErpServer:
    """Starts the stand-in in a background thread; a context manager for tests."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 latency_seconds: float = 0.0, jitter_seconds: float = 0.0):
        self.host = host
        self.port = port
        self.app = ErpApp(api_key, latency_seconds, jitter_seconds)
        self.inventory = Inventory()
        self.customers = Customers()
        register_inventory(self.app, self.inventory)
        register_customers(self.app, self.customers)
        from . import control
        control.register(self)
        self._server: ErpHttpServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------------------------------

    def start(self) -> ErpServer:
        self.app.stopping.clear()
        self._server = make_server(self.app, self.host, self.port)
        self.port = self._server.server_address[1]  # keep the port, so go_down/come_up reuse it
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="erp-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.app.stopping.set()  # wake hanging and slow requests
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._server = None

    def __enter__(self) -> ErpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def info(self) -> dict:
        """The start-up contract printed by ``python -m stand_ins.erp serve``."""
        return {"url": self.url, "control_url": f"{self.url}/__control", "api_key": self.app.api_key}

    def go_down(self) -> None:
        """Close the listening socket: connections are refused (ECONNREFUSED) until ``come_up``."""
        self.stop()

    def come_up(self) -> None:
        """Listen again on the same port, with the same state."""
        if not self.running:
            self.start()

    # -- test controls (the same operations as the /__control endpoints) ------------------------------------

    def inject(self, kind: str, count: int | EllipsisType | None = ..., *, method: str | None = None,
               path: str | None = None, delay_seconds: float | None = None) -> None:
        """Make the next ``count`` matching requests (``None``: all, until cleared) fail with ``kind``.
        ``count`` defaults to 1, and for ``down`` to ``None``, as on the HTTP control API."""
        if count is ...:
            count = None if kind == "down" else 1
        fault = make_fault(kind, count, method, path, delay_seconds)
        with self.app.lock:
            self.app.faults.append(fault)

    def clear_faults(self) -> None:
        with self.app.lock:
            self.app.faults.clear()

    def set_latency(self, seconds: float, jitter_seconds: float = 0.0) -> None:
        self.app.latency_seconds, self.app.jitter_seconds = seconds, jitter_seconds

    def requests(self) -> list[dict]:
        return list(self.app.request_log)

    def clear_requests(self) -> None:
        self.app.request_log.clear()

    def reset(self) -> None:
        """Seed data back, no faults, no latency, an empty request log."""
        with self.app.lock:
            self.app.faults.clear()
            self.inventory.reset()
            self.customers.reset()
        self.set_latency(0.0, 0.0)
        self.clear_requests()
