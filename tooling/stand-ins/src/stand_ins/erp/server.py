"""The ERP stand-in's HTTP plumbing: routing, the fault pipeline, the request log and the server.

Plain HTTP on the standard library's server, like the Salesforce emulator (salesforce_emulator.app): the
fault injector must be able to hang a request or drop the TCP connection mid-request, which a framework
would hide, and the stand-in should start with no dependency at all.
"""

from __future__ import annotations

import collections
import contextlib
import json
import random
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

FAULT_KINDS = frozenset({"latency", "hang", "500", "503", "429", "drop", "down", "malformed"})
"""latency: answer normally after ``delay_seconds``; hang: send nothing for ``delay_seconds`` (default 30),
then close; 500/503/429: that status with a JSON error; drop: close the connection without an answer;
down: 503 ``ERP_DOWN`` for every request until cleared; malformed: 200 with a body that is not JSON."""

CONTROL_PREFIX = "/__control/"
DEFAULT_HANG_SECONDS = 30.0


class ErpError(Exception):
    """An error answer: ``{"code": ..., "message": ...}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def json(self) -> object:
        if not self.body.strip():
            raise ErpError(400, "INVALID_JSON", "the request body is empty; a JSON document is required")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ErpError(400, "INVALID_JSON", f"the request body is not valid JSON: {exc}") from None

    def json_object(self) -> dict:
        body = self.json()
        if not isinstance(body, dict):
            raise ErpError(400, "INVALID_JSON", "the request body must be a JSON object")
        return body


@dataclass
class Reply:
    status: int = 200
    body: object = None  # JSON-serialisable, raw bytes, or None for no body
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


Handler = Callable[[Request], Reply]


class Router:
    """Paths like ``/customers/{customer_id}``: each ``{name}`` matches one path segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        self._routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

    def resolve(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """(handler, path parameters, path known under another method)."""
        known = False
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match:
                if route_method == method:
                    return handler, match.groupdict(), True
                known = True
        return None, {}, known


@dataclass
class Fault:
    kind: str
    count: int | None  # None: until cleared
    method: str | None = None
    path: re.Pattern[str] | None = None
    delay_seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return ((self.count is None or self.count > 0) and (self.method is None or self.method == method)
                and (self.path is None or self.path.search(path) is not None))

    def describe(self) -> dict:
        return {"kind": self.kind, "remaining": self.count, "method": self.method,
                "path": self.path.pattern if self.path else None, "delay_seconds": self.delay_seconds}


class DropConnection(Exception):
    """Close the socket without an HTTP answer."""


def make_fault(kind: object, count: object = 1, method: object = None, path: object = None,
               delay_seconds: object = None) -> Fault:
    """Validate a fault specification (from the HTTP control API or the Python API)."""
    if kind not in FAULT_KINDS:
        raise ErpError(400, "INVALID_FAULT", f"kind must be one of {sorted(FAULT_KINDS)}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ErpError(400, "INVALID_FAULT", "count must be a positive integer, or null for until cleared")
    if method is not None and not isinstance(method, str):
        raise ErpError(400, "INVALID_FAULT", "method must be a string")
    try:
        pattern = re.compile(path) if path else None
    except (re.error, TypeError) as exc:
        raise ErpError(400, "INVALID_FAULT", f"path is not a valid regular expression: {exc}") from None
    try:
        delay = float(delay_seconds) if delay_seconds is not None else 0.0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ErpError(400, "INVALID_FAULT", "delay_seconds must be a number") from None
    if kind == "latency" and delay <= 0:
        raise ErpError(400, "INVALID_FAULT", "a latency fault needs delay_seconds > 0")
    if kind == "hang" and delay <= 0:
        delay = DEFAULT_HANG_SECONDS
    return Fault(str(kind), count, method.upper() if isinstance(method, str) else None, pattern, delay)


class ErpApp:
    """Routes, faults, latency and the request log; the domain modules register their routes on it."""

    def __init__(self, api_key: str | None = None, latency_seconds: float = 0.0, jitter_seconds: float = 0.0):
        self.api_key = api_key
        self.latency_seconds = latency_seconds
        self.jitter_seconds = jitter_seconds
        self.router = Router()
        self.faults: list[Fault] = []
        self.lock = threading.RLock()  # guards faults and the domain state (handlers run in threads)
        self.request_log: collections.deque[dict] = collections.deque(maxlen=100_000)
        self.stopping = threading.Event()  # wakes hanging requests when the server stops

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.count is not None:
                        fault.count -= 1
                    return fault
        return None

    def handle(self, req: Request) -> Reply:
        """One request through control routing, faults, latency, auth and the domain routes."""
        if req.path.startswith(CONTROL_PREFIX):
            return self._route(req)
        fault = self.take_fault(req.method, req.path)
        # Logged when it arrives (a test sees a hanging call), completed when answered; a call still running
        # when the log is cleared never reappears in the new log.
        started = time.monotonic()
        entry = {"method": req.method, "path": req.path, "query": {k: v[-1] for k, v in req.query.items()},
                 "status": None, "fault": fault.kind if fault else None, "duration_ms": None, "time": time.time()}
        self.request_log.append(entry)  # never the headers: they carry the API key
        try:
            reply = self._faulted(req, fault)
        finally:
            entry["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        entry["status"] = reply.status
        return reply

    def _faulted(self, req: Request, fault: Fault | None) -> Reply:
        delay = self.latency_seconds + (random.uniform(0, self.jitter_seconds) if self.jitter_seconds else 0.0)
        if fault is not None and fault.kind == "latency":
            delay += fault.delay_seconds
        if delay > 0:
            self.stopping.wait(delay)
        if fault is not None:
            if fault.kind == "hang":
                self.stopping.wait(fault.delay_seconds)
                raise DropConnection
            if fault.kind == "drop":
                raise DropConnection
            if fault.kind == "down":
                return Reply(503, {"code": "ERP_DOWN", "message": "the ERP is down for maintenance"},
                             {"Retry-After": "30"})
            if fault.kind == "503":
                return Reply(503, {"code": "SERVICE_UNAVAILABLE", "message": "the ERP is temporarily unavailable"},
                             {"Retry-After": "1"})
            if fault.kind == "429":
                return Reply(429, {"code": "TOO_MANY_REQUESTS", "message": "rate limit exceeded"},
                             {"Retry-After": "1"})
            if fault.kind == "500":
                return Reply(500, {"code": "INTERNAL_ERROR", "message": "an unexpected error occurred in the ERP"})
            if fault.kind == "malformed":
                return Reply(200, b"<html>Gateway page</html>")
        if self.api_key is not None and req.headers.get("x-api-key") != self.api_key:
            return Reply(401, {"code": "UNAUTHORIZED", "message": "a valid X-Api-Key header is required"})
        return self._route(req)

    def _route(self, req: Request) -> Reply:
        handler, params, known = self.router.resolve(req.method, req.path)
        if handler is None:
            if known:
                return Reply(405, {"code": "METHOD_NOT_ALLOWED",
                                   "message": f"{req.method} is not allowed on {req.path}"})
            return Reply(404, {"code": "NOT_FOUND", "message": f"no resource at {req.path}"})
        req.params = params
        try:
            return handler(req)
        except ErpError as exc:
            return Reply(exc.status, {"code": exc.code, "message": exc.message})
        except Exception:  # a bug in the stand-in: an opaque 500 for the client, the traceback on stderr
            print(f"erp stand-in error on {req.method} {req.path}", file=sys.stderr)
            traceback.print_exc()
            return Reply(500, {"code": "INTERNAL_ERROR", "message": "an unexpected error occurred in the ERP"})


# -- HTTP server ---------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ErpStandIn/1.0"
    sys_version = ""
    app: ErpApp  # set on the subclass built per server

    def log_message(self, format: str, *args: object) -> None:  # quiet: the request log is the record
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        req = Request(method=self.command, path=parts.path, query=parse_qs(parts.query, keep_blank_values=True),
                      headers={k.lower(): v for k, v in self.headers.items()}, body=body)
        try:
            reply = self.app.handle(req)
        except DropConnection:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = reply.encoded()
        self.send_response(reply.status)
        if payload:
            self.send_header("Content-Type", "application/json" if not isinstance(reply.body, bytes) else "text/html")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class ErpHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type):
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def get_request(self):  # type: ignore[override]
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body go out in two writes
        with self._open_lock:
            self._open.add(sock)
        return sock, addr

    def shutdown_request(self, request) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut every open (keep-alive) connection: a stopped ERP must not go on answering on them."""
        with self._open_lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def handle_error(self, request, client_address) -> None:  # a client hanging up is not our error
        if sys.exc_info()[0] in (ConnectionResetError, BrokenPipeError, TimeoutError):
            return
        super().handle_error(request, client_address)


def make_server(app: ErpApp, host: str, port: int) -> ErpHttpServer:
    handler = type("ErpHandler", (_Handler,), {"app": app})
    return ErpHttpServer((host, port), handler)
