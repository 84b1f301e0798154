"""The billing system stand-in on the shared kit (stand_ins.kit): billing accounts in memory, idempotency keys,
and the billing system's fault kinds. The HTTP contract is in README.md; routing, the fault pipeline, the request
log and the loopback server come from the kit."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime
from typing import Any

from stand_ins.kit import (
    Action,
    Envelope,
    FaultKind,
    Faults,
    HttpError,
    Reply,
    Request,
    RequestLog,
    StandInApp,
    control,
)

__all__ = ["FAULT_KINDS", "BillingApp", "HttpError", "validate_account_request"]

ID_PATTERN = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
LOGGED_HEADERS = ("idempotency-key", "content-type", "user-agent", "x-correlation-id")
ENVELOPE = Envelope(key="error", renames={"invalid_json": "invalid_request"})
DEFAULT_TIMEOUT_HOLD = 30.0


def _injected(status: int) -> FaultKind:
    headers = {"Retry-After": "1"} if status in (429, 503) else {}
    return FaultKind(str(status), Action.REPLY,
                     lambda: Reply(status, {"error": "injected_fault", "message": f"injected {status}"}, dict(headers)))


KINDS = (
    *(_injected(status) for status in (400, 401, 404, 409, 422, 429, 500, 502, 503, 504)),
    FaultKind("timeout", Action.HOLD, default_delay=DEFAULT_TIMEOUT_HOLD),
    FaultKind("down", Action.DROP_UNREAD),
    FaultKind("lost_response", Action.LOST_RESPONSE),
    FaultKind("delay", Action.DELAY, needs_delay=True),
)
FAULT_KINDS = frozenset(kind.name for kind in KINDS)
"""HTTP statuses are answered with a JSON error; ``timeout`` holds the request without answering (for
`delay_seconds`, default 30, or until the server stops); ``down`` drops the connection before reading the
request; ``lost_response`` processes the request and then drops the connection (the write happened, the
caller never hears of it); ``delay`` waits `delay_seconds` and then answers normally."""


class BillingApp(StandInApp):
    """Billing accounts and their routes on the kit's pipeline (so the Python API and HTTP share the state)."""

    def __init__(self, latency_seconds: float = 0.0):
        super().__init__("billing system", envelope=ENVELOPE, latency_seconds=latency_seconds,
                         faults=Faults(KINDS, error_code="invalid_request", name_fields=True),
                         log=RequestLog(headers=LOGGED_HEADERS, bodies=True))
        self.accounts: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, tuple[str, str]] = {}  # key -> (request fingerprint, account number)
        self.blocked_accounts: set[str] = set()
        self._sequence = 0
        self._register()

    def reset(self) -> None:
        """Forget accounts, idempotency keys, blocked accounts, faults, latency and the request log."""
        with self.lock:
            self.accounts.clear()
            self.idempotency.clear()
            self.blocked_accounts.clear()
            self._sequence = 0
        assert self.faults is not None
        self.faults.clear()
        self.request_log.clear()
        self.set_latency(0.0)

    # -- billing accounts --------------------------------------------------------------------------------

    def open_account(self, body: Any, idempotency_key: str | None) -> Reply:
        request = validate_account_request(body)
        if idempotency_key is not None and not KEY_PATTERN.match(idempotency_key):
            raise HttpError(400, "invalid_request", "Idempotency-Key must be 1-255 printable ASCII characters",
                            field="Idempotency-Key")
        fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        with self.lock:
            if idempotency_key is not None and idempotency_key in self.idempotency:
                seen, number = self.idempotency[idempotency_key]
                if seen != fingerprint:
                    raise HttpError(422, "idempotency_key_reused",
                                    "this Idempotency-Key was used with a different request body")
                return Reply(200, self.accounts[number], {"Idempotent-Replayed": "true"})
            if request["account_id"] in self.blocked_accounts:
                raise HttpError(422, "account_blocked",
                                f"customer account {request['account_id']} may not be billed", field="account_id")
            self._sequence += 1
            number = f"BA-{self._sequence:06d}"
            account = {"account_number": number, **request, "status": "active",
                       "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")}
            self.accounts[number] = account
            if idempotency_key is not None:
                self.idempotency[idempotency_key] = (fingerprint, number)
        return Reply(201, account, {"Location": f"/billing-accounts/{number}"})

    def find(self, contract_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(a) for a in self.accounts.values() if contract_id is None or a["contract_id"] == contract_id]

    # -- routes ------------------------------------------------------------------------------------------

    def _register(self) -> None:
        add = self.router.add
        add("GET", "/health", lambda req: Reply(200, {"status": "ok"}))
        add("POST", "/billing-accounts", lambda req: self.open_account(req.json(), req.headers.get("idempotency-key")))
        add("GET", "/billing-accounts", lambda req: Reply(200, {"items": self.find(req.arg("contract_id"))}))
        add("GET", "/billing-accounts/{number}", self._get_account)
        control.register(self, reset=self.reset, lists=control.named)
        add("POST", "/__control/latency", self._post_latency)
        add("POST", "/__control/blocked-accounts", self._post_blocked)

    def _get_account(self, req: Request) -> Reply:
        with self.lock:
            account = self.accounts.get(req.params["number"])
        if account is None:
            raise HttpError(404, "not_found", f"no billing account {req.params['number']}")
        return Reply(200, account)

    def _post_latency(self, req: Request) -> Reply:
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_request", "the body must be a JSON object")
        self.set_latency(control.number(body, "seconds", -1, 0, name_field=True))  # -1: required
        return Reply(200, {"seconds": self.latency_seconds})

    def _post_blocked(self, req: Request) -> Reply:
        body = req.json()
        account_id = body.get("account_id") if isinstance(body, dict) else None
        if not isinstance(account_id, str) or not account_id:
            raise HttpError(400, "invalid_request", "account_id is required", field="account_id")
        with self.lock:
            self.blocked_accounts.add(account_id)
        return Reply(204)


def validate_account_request(body: Any) -> dict[str, Any]:
    """The fields of a POST /billing-accounts body, checked; a 400 names the first wrong field."""
    if not isinstance(body, dict):
        raise HttpError(400, "invalid_request", "the body must be a JSON object")
    request: dict[str, Any] = {}
    for name in ("contract_id", "account_id"):
        value = body.get(name)
        if not isinstance(value, str) or not ID_PATTERN.match(value):
            raise HttpError(400, "invalid_request", f"{name} must be a 15 or 18 character Salesforce id", field=name)
        request[name] = value
    signed_on = body.get("signed_on")
    if signed_on is not None:
        try:
            date.fromisoformat(signed_on)
        except (TypeError, ValueError):
            raise HttpError(400, "invalid_request", "signed_on must be a date (YYYY-MM-DD)",
                            field="signed_on") from None
    request["signed_on"] = signed_on
    currency = body.get("currency", "EUR")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise HttpError(400, "invalid_request", "currency must be an ISO 4217 code", field="currency")
    request["currency"] = currency
    return request
