"""A local billing system over plain HTTP, for the Fire and Forget pattern's tests, demos and benchmarks.

    with BillingServer() as billing:
        requests.post(f"{billing.url}/billing-accounts", json={...}, headers={"Idempotency-Key": "..."})
        billing.inject("503", count=2)
        billing.accounts(contract_id="800...")

``python -m stand_ins.billing serve`` runs the same thing as a process; README.md beside this file is the
HTTP contract.
"""

from __future__ import annotations

from typing import Any

from stand_ins.kit import StandInService

from .app import FAULT_KINDS, BillingApp

__all__ = ["FAULT_KINDS", "BillingServer"]


class BillingServer(StandInService):
    """Runs the stand-in in a background thread; a context manager. State survives `stop`/`start`: after `stop`
    connections are refused, as when the billing system is down (life cycle: stand_ins.kit)."""

    thread_name = "billing-stand-in"
    server_version = "LocalBilling/1.0"
    app: BillingApp

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency_seconds: float = 0.0):
        super().__init__(BillingApp(latency_seconds=latency_seconds), host, port)

    # -- test controls (the same operations as the /__control endpoints) -------------------------------

    def inject(self, kind: str, count: int = 1, *, method: str | None = None, path: str | None = None,
               delay_seconds: float | None = None) -> None:
        """Make the next `count` requests matching method and path (a regex) fail with `kind` (ValueError if
        the specification is wrong)."""
        assert self.app.faults is not None
        self.app.faults.add(kind, count, method, path, delay_seconds)

    def clear_faults(self) -> None:
        assert self.app.faults is not None
        self.app.faults.clear()

    def set_latency(self, seconds: float) -> None:
        self.app.set_latency(seconds)

    def block_account(self, account_id: str) -> None:
        """Opening a billing account for this customer account is refused with 422 account_blocked."""
        with self.app.lock:
            self.app.blocked_accounts.add(account_id)

    def accounts(self, contract_id: str | None = None) -> list[dict[str, Any]]:
        return self.app.find(contract_id)

    def requests(self) -> list[dict[str, Any]]:
        return self.app.request_log.entries()

    def clear_requests(self) -> None:
        self.app.request_log.clear()

    def reset(self) -> None:
        """Forget accounts, idempotency keys, blocked accounts, faults, latency and the request log."""
        self.app.reset()
