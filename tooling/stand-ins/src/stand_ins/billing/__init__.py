"""A local billing system over plain HTTP, for the Fire and Forget pattern's tests, demos and benchmarks.

    with BillingServer() as billing:
        requests.post(f"{billing.url}/billing-accounts", json={...}, headers={"Idempotency-Key": "..."})
        billing.inject("503", count=2)
        billing.accounts(contract_id="800...")

``python -m stand_ins.billing serve`` runs the same thing as a process; README.md beside this file is the
HTTP contract.
"""

from __future__ import annotations

import threading
from typing import Any

from .app import FAULT_KINDS, BillingApp, BillingHTTPServer, make_server

__all__ = ["FAULT_KINDS", "BillingServer"]


class BillingServer:
    """Runs the stand-in in a background thread; a context manager. State survives `stop`/`start`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency_seconds: float = 0.0):
        self.host = host
        self.port = port
        self.app = BillingApp(latency_seconds=latency_seconds)
        self._server: BillingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> BillingServer:
        """Start serving; after a `stop` it comes back on the same port with the same accounts."""
        if self._server is not None:
            return self
        self.app.stopping.clear()
        self._server = make_server(self.app, self.host, self.port)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="billing-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused, as when the billing system is down)."""
        if self._server is None:
            return
        self.app.stopping.set()  # releases requests held by timeout/delay faults
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def __enter__(self) -> BillingServer:
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
    def info(self) -> dict[str, Any]:
        """The start-up contract printed by ``python -m stand_ins.billing serve``."""
        return {"url": self.url, "control_url": f"{self.url}/__control"}

    # -- test controls (the same operations as the /__control endpoints) -------------------------------

    def inject(self, kind: str, count: int = 1, *, method: str | None = None, path: str | None = None,
               delay_seconds: float | None = None) -> None:
        """Make the next `count` requests matching method and path (a regex) fail with `kind`."""
        from .app import HttpError

        try:
            self.app.add_fault(kind, count, method, path, delay_seconds)
        except HttpError as exc:
            raise ValueError(str(exc)) from None

    def clear_faults(self) -> None:
        with self.app.lock:
            self.app.faults.clear()

    def set_latency(self, seconds: float) -> None:
        self.app.latency_seconds = float(seconds)

    def block_account(self, account_id: str) -> None:
        """Opening a billing account for this customer account is refused with 422 account_blocked."""
        with self.app.lock:
            self.app.blocked_accounts.add(account_id)

    def accounts(self, contract_id: str | None = None) -> list[dict[str, Any]]:
        return self.app.find(contract_id)

    def requests(self) -> list[dict[str, Any]]:
        with self.app.lock:
            return list(self.app.request_log)

    def clear_requests(self) -> None:
        with self.app.lock:
            self.app.request_log.clear()

    def reset(self) -> None:
        """Forget accounts, idempotency keys, blocked accounts, faults, latency and the request log."""
        self.app.reset()
