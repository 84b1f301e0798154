"""The billing system stand-in: billing accounts in memory, idempotency keys, fault injection, a request log.

Plain HTTP on loopback (stdlib ``http.server``): no TLS, no dependency. The HTTP contract is in README.md.
Written on the standard library rather than a web framework because faults must be able to hang a request
or drop the TCP connection mid-request, which a framework's error handling would turn into a 500.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULT_KINDS = frozenset({"400", "401", "404", "409", "422", "429", "500", "502", "503", "504",
                         "timeout", "down", "lost_response", "delay"})  # fmt: skip
"""HTTP statuses are answered with a JSON error; ``timeout`` holds the request without answering (for
`delay_seconds`, default 30, or until the server stops); ``down`` drops the connection before reading the
request; ``lost_response`` processes the request and then drops the connection (the write happened, the
caller never hears of it); ``delay`` waits `delay_seconds` and then answers normally."""

DEFAULT_TIMEOUT_HOLD = 30.0
ID_PATTERN = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
LOGGED_HEADERS = ("idempotency-key", "content-type", "user-agent", "x-correlation-id")


class HttpError(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, **extra}


@dataclass
class Fault:
    kind: str
    count: int
    method: str | None = None
    path: re.Pattern[str] | None = None
    delay_seconds: float | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or bool(self.path.search(path)))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count, "method": self.method,
                "path": self.path.pattern if self.path else None, "delay_seconds": self.delay_seconds}


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class BillingApp:
    """State and behaviour, independent of the socket server (so the Python API and HTTP share it)."""

    def __init__(self, latency_seconds: float = 0.0):
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.latency_seconds = latency_seconds
        self.accounts: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, tuple[str, str]] = {}  # key -> (request fingerprint, account number)
        self.blocked_accounts: set[str] = set()
        self.faults: list[Fault] = []
        self.request_log: list[dict[str, Any]] = []
        self._sequence = 0

    # -- faults ----------------------------------------------------------------------------------------

    def add_fault(self, kind: str, count: int = 1, method: str | None = None, path: str | None = None,
                  delay_seconds: float | None = None) -> Fault:
        if kind not in FAULT_KINDS:
            raise HttpError(400, "invalid_request", f"kind must be one of {sorted(FAULT_KINDS)}", field="kind")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise HttpError(400, "invalid_request", "count must be a positive integer", field="count")
        if kind == "delay" and not delay_seconds:
            raise HttpError(400, "invalid_request", "a delay fault needs delay_seconds", field="delay_seconds")
        try:
            pattern = re.compile(path) if path else None
        except re.error as exc:
            raise HttpError(400, "invalid_request", f"path is not a regular expression: {exc}", field="path") from None
        fault = Fault(kind, count, method.upper() if method else None, pattern,
                      float(delay_seconds) if delay_seconds is not None else None)
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def reset(self) -> None:
        with self.lock:
            self.accounts.clear()
            self.idempotency.clear()
            self.blocked_accounts.clear()
            self.faults.clear()
            self.request_log.clear()
            self.latency_seconds = 0.0
            self._sequence = 0

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

    # -- HTTP dispatch -----------------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., Reply]]]:
        return [
            ("GET", re.compile(r"^/health$"), lambda req: Reply(200, {"status": "ok"})),
            ("POST", re.compile(r"^/billing-accounts$"),
             lambda req: self.open_account(req.json(), req.headers.get("idempotency-key"))),
            ("GET", re.compile(r"^/billing-accounts$"),
             lambda req: Reply(200, {"items": self.find(req.query.get("contract_id"))})),
            ("GET", re.compile(r"^/billing-accounts/(?P<number>[^/]+)$"), self._get_account),
            # control endpoints: never faulted, never logged
            ("POST", re.compile(r"^/__control/faults$"), self._post_fault),
            ("GET", re.compile(r"^/__control/faults$"),
             lambda req: Reply(200, {"faults": [f.describe() for f in self.faults]})),
            ("DELETE", re.compile(r"^/__control/faults$"), lambda req: self._clear(self.faults)),
            ("POST", re.compile(r"^/__control/latency$"), self._post_latency),
            ("POST", re.compile(r"^/__control/blocked-accounts$"), self._post_blocked),
            ("GET", re.compile(r"^/__control/requests$"), lambda req: Reply(200, {"requests": list(self.request_log)})),
            ("DELETE", re.compile(r"^/__control/requests$"), lambda req: self._clear(self.request_log)),
            ("POST", re.compile(r"^/__control/reset$"), self._post_reset),
        ]

    def _get_account(self, req: ParsedRequest) -> Reply:
        with self.lock:
            account = self.accounts.get(req.match["number"])
        if account is None:
            raise HttpError(404, "not_found", f"no billing account {req.match['number']}")
        return Reply(200, account)

    def _post_fault(self, req: ParsedRequest) -> Reply:
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_request", "the body must be a JSON object")
        fault = self.add_fault(str(body.get("kind")), body.get("count", 1), body.get("method"), body.get("path"),
                               body.get("delay_seconds"))
        return Reply(201, fault.describe())

    def _post_latency(self, req: ParsedRequest) -> Reply:
        body = req.json()
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise HttpError(400, "invalid_request", "seconds must be a number >= 0", field="seconds")
        self.latency_seconds = float(seconds)
        return Reply(200, {"seconds": self.latency_seconds})

    def _post_blocked(self, req: ParsedRequest) -> Reply:
        body = req.json()
        account_id = body.get("account_id") if isinstance(body, dict) else None
        if not isinstance(account_id, str) or not account_id:
            raise HttpError(400, "invalid_request", "account_id is required", field="account_id")
        with self.lock:
            self.blocked_accounts.add(account_id)
        return Reply(204, None)

    def _post_reset(self, req: ParsedRequest) -> Reply:
        self.reset()
        return Reply(204, None)

    def _clear(self, items: list[Any]) -> Reply:
        with self.lock:
            items.clear()
        return Reply(204, None)


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


@dataclass
class ParsedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    match: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        if not self.body.strip():
            raise HttpError(400, "invalid_request", "a JSON body is required")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, "invalid_request", f"the body is not valid JSON: {exc}") from None


class _Dropped(Exception):
    """Close the connection without a response."""


def make_handler(app: BillingApp) -> type[BaseHTTPRequestHandler]:
    routes = app.routes()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
        server_version = "LocalBilling/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the request log is the record
            pass

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            path = url.path
            control = path.startswith("/__control/")
            fault = None if control else app.take_fault(self.command, path)
            if fault is not None and fault.kind == "down":
                self._drop()
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = ParsedRequest(self.command, path, {k: v[-1] for k, v in parse_qs(url.query).items()},
                                    {k.lower(): v for k, v in self.headers.items()}, body)
            if not control and app.latency_seconds:
                app.stopping.wait(app.latency_seconds)
            if fault is not None and fault.kind in ("timeout", "delay"):
                hold = fault.delay_seconds if fault.delay_seconds is not None else DEFAULT_TIMEOUT_HOLD
                app.stopping.wait(hold)
                if fault.kind == "timeout":
                    self._log(request, None, fault)
                    self._drop()
                    return
            if fault is not None and fault.kind.isdigit():
                status = int(fault.kind)
                reply = Reply(status, {"error": "injected_fault", "message": f"injected {status}"},
                              {"Retry-After": "1"} if status in (429, 503) else {})
            else:
                reply = self._route(request)
            self._log(request, reply.status, fault)
            if fault is not None and fault.kind == "lost_response":
                self._drop()
                return
            self._send(reply)

        def _route(self, request: ParsedRequest) -> Reply:
            known = False
            for method, pattern, handler in routes:
                match = pattern.match(request.path)
                if match is None:
                    continue
                known = True
                if method != request.method:
                    continue
                request.match = match.groupdict()
                try:
                    return handler(request)
                except HttpError as exc:
                    return Reply(exc.status, exc.body)
            if known:
                return Reply(405, {"error": "method_not_allowed", "message": f"{request.method} is not allowed here"})
            return Reply(404, {"error": "not_found", "message": f"no route for {request.path}"})

        def _log(self, request: ParsedRequest, status: int | None, fault: Fault | None) -> None:
            if request.path.startswith("/__control/"):
                return
            try:
                body: Any = json.loads(request.body) if request.body else None
            except ValueError:
                body = request.body.decode("utf-8", "replace")
            entry = {"time": time.time(), "method": request.method, "path": request.path, "query": request.query,
                     "headers": {k: v for k, v in request.headers.items() if k in LOGGED_HEADERS},
                     "body": body, "status": status, "fault": fault.kind if fault else None}
            with app.lock:
                app.request_log.append(entry)

        def _send(self, reply: Reply) -> None:
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch

    return Handler


class BillingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(app: BillingApp, host: str = "127.0.0.1", port: int = 0) -> BillingHTTPServer:
    return BillingHTTPServer((host, port), make_handler(app))
