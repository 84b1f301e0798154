"""The emulated org: its state, the request pipeline (faults, auth, allocation, logging) and the server."""

from __future__ import annotations

import collections
import contextlib
import json
import re
import secrets
import socket
import ssl
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from . import ids
from .errors import ApiError
from .http import Request, Response, Router
from .records import RecordService
from .schema import Schema, load_schema
from .store import Store
from .tls import Credentials, ensure_credentials

DEFAULT_API_VERSION = "62.0"
SUPPORTED_VERSIONS = [f"{v}.0" for v in range(31, 67)]
_RELEASES = {59: "Winter '24", 60: "Spring '24", 61: "Summer '24", 62: "Winter '25", 63: "Spring '25",
             64: "Summer '25", 65: "Winter '26", 66: "Spring '26"}

FAULT_KINDS = {"503", "UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "INVALID_SESSION_ID", "delay", "drop"}


def release_label(version: str) -> str:
    major = int(float(version))
    return _RELEASES.get(major, f"API {version}")


@dataclass
class Fault:
    kind: str
    count: int
    method: str | None = None
    path: re.Pattern[str] | None = None
    delay_seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.count > 0 and (self.method is None or self.method == method)
                and (self.path is None or self.path.search(path) is not None))


@dataclass
class Settings:
    state_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    token_ttl_seconds: int = 7200
    daily_api_limit: int = 15000
    schema_files: list[Path] = field(default_factory=list)
    bulk_batch_delay_seconds: float = 0.0  # simulated processing time per Bulk API 2.0 internal batch


class DropConnection(Exception):
    """Raised by the pipeline to close the socket without an HTTP response."""


class EmulatorApp:
    """Everything one emulated org owns; resource modules register their routes against it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._tmp_dir = None
        if settings.state_dir is not None:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            cred_dir = settings.state_dir
            db_path: Path | None = settings.state_dir / "salesforce.sqlite3"
        else:
            import tempfile
            self._tmp_dir = tempfile.TemporaryDirectory(prefix="sf-emulator-")
            cred_dir = Path(self._tmp_dir.name)
            db_path = None
        self.credentials: Credentials = ensure_credentials(cred_dir, [settings.host, "localhost", "127.0.0.1"])
        self.schema: Schema = load_schema(settings.schema_files)
        self.store = Store(db_path)
        self.id_factory = ids.IdFactory()
        self.id_factory.advance_past(max((ids.IdFactory.serial(i) for i in self.store.max_record_serial_source()),
                                         default=0))
        self.records = RecordService(self.schema, self.store, self.id_factory)
        self.router = Router()
        self.faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self.request_log: collections.deque[dict] = collections.deque(maxlen=200_000)
        self._in_flight = 0
        self._idle = threading.Condition()
        self._setup_org()
        self.base_url = ""  # set once the server is bound
        from . import auth, bulk2, composite, control, events, rest
        for module in (auth, rest, composite, bulk2, events, control):
            module.register(self.router, self)

    # -- org set-up ------------------------------------------------------------------------------

    def _setup_org(self) -> None:
        config = self.store.kv_get("config", "org")
        if config is None:
            config = {
                "client_id": "3MVG9" + secrets.token_urlsafe(60)[:80].replace("-", "A").replace("_", "b"),
                "client_secret": secrets.token_hex(32).upper(),
                "username": "integration@example.com",
                "password": "Integration-" + secrets.token_urlsafe(12),
                "admin_username": "admin@example.com",
                "admin_password": "Admin-" + secrets.token_urlsafe(12),
            }
            self.store.kv_put("config", "org", config)
        self.config: dict = config  # type: ignore[assignment]
        self.users: dict[str, str] = {}
        for key, last in (("username", "Integration"), ("admin_username", "Admin")):
            username = config[key]
            existing = self.store.unique_owner("User", "Username", username)
            if existing:
                self.users[username] = existing
                continue
            bootstrap = "005000000000000AAA"
            uid = self.records.create("User", {"Username": username, "LastName": last, "FirstName": "Local",
                                               "Email": username, "Alias": last[:8].lower()}, bootstrap)
            user = self.store.get(uid)
            assert user is not None
            user.update({"CreatedById": uid, "LastModifiedById": uid, "Name": f"Local {last}"})
            self.store.replace(user)
            self.users[username] = uid
        if not self.store.kv_get("config", "standard_pricebook"):
            pid = self.records.create("Pricebook2", {"Name": "Standard Price Book", "IsActive": True},
                                      self.integration_user_id)
            record = self.store.get(pid)
            assert record is not None
            record["IsStandard"] = True
            self.store.replace(record)
            self.store.kv_put("config", "standard_pricebook", pid)

    @property
    def integration_user_id(self) -> str:
        return self.users[self.config["username"]]

    @property
    def standard_pricebook_id(self) -> str:
        return str(self.store.kv_get("config", "standard_pricebook"))

    # -- tokens ----------------------------------------------------------------------------------

    def issue_token(self, user_id: str, client_id: str) -> str:
        token = f"{ids.ORG_ID[:15]}!" + secrets.token_urlsafe(72)
        self.store.kv_put("token", token, {"user_id": user_id, "client_id": client_id,
                                           "expires_at": time.time() + self.settings.token_ttl_seconds})
        return token

    def token_user(self, token: str) -> str | None:
        entry = self.store.kv_get("token", token)
        if not isinstance(entry, dict) or entry["expires_at"] < time.time():
            return None
        return entry["user_id"]

    def expire_tokens(self) -> int:
        items = self.store.kv_items("token")
        for key, _ in items:
            self.store.kv_delete("token", key)
        return len(items)

    # -- API allocation --------------------------------------------------------------------------

    def api_usage(self) -> tuple[int, int]:
        return self.store.get_counter("api_usage"), self.settings.daily_api_limit

    def limit_header(self) -> str:
        used, limit = self.api_usage()
        return f"api-usage={used}/{limit}"

    # -- request pipeline ------------------------------------------------------------------------

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._faults_lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    return fault
            return None

    def handle(self, req: Request, *, internal: bool = False) -> Response:
        """Run one request through faults, routing, auth and allocation; never raises but DropConnection."""
        override = req.query.get("_HttpMethod")
        if req.method == "POST" and override and override.upper() in ("PATCH", "DELETE", "GET"):
            req.method = override.upper()  # Salesforce's documented POST override for clients without PATCH
        is_control = req.path.startswith("/__emulator/")
        fault = None if (is_control or internal) else self.take_fault(req.method, req.path)
        if fault is not None:
            if fault.kind == "drop":
                self._log(req, 0)
                raise DropConnection
            if fault.kind == "delay":
                time.sleep(fault.delay_seconds)
            else:
                resp = _fault_response(fault.kind)
                self._log(req, resp.status)
                return resp

        route, params, path_known = self.router.resolve(req.method, req.path)
        if route is None:
            if path_known:
                resp = Response(405, [{"errorCode": "METHOD_NOT_ALLOWED",
                                       "message": f"HTTP Method '{req.method}' not allowed."}])
            else:
                resp = Response(404, [{"errorCode": "NOT_FOUND",
                                       "message": "The requested resource does not exist"}])
            if not is_control:
                self._log(req, resp.status)
            return resp
        req.match = params
        resp = self._run(route.handler, route.api, req, internal)
        if not is_control and not internal:
            self._log(req, resp.status)
        return resp

    def _run(self, handler, api: bool, req: Request, internal: bool) -> Response:
        try:
            if api and not internal:
                if req.api_version and req.api_version not in SUPPORTED_VERSIONS:
                    raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
                token = _bearer(req.header("authorization"))
                user = self.token_user(token) if token else None
                if user is None:
                    raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
                req.user_id, req.token = user, token
                used, limit = self.api_usage()
                if used >= limit:
                    raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                self.store.next_counter("api_usage")
            resp = handler(req)
        except ApiError as exc:
            resp = Response(exc.status, exc.body())
        except Exception:  # the client gets Salesforce's opaque 500, the traceback goes to our stderr
            error_id = secrets.token_hex(6)
            print(f"emulator error {error_id} on {req.method} {req.path}", file=sys.stderr)
            traceback.print_exc()
            resp = Response(500, [{"errorCode": "UNKNOWN_EXCEPTION",
                                   "message": f"An unexpected error occurred. Please include this ErrorId if "
                                              f"you contact support: {error_id}"}])
        if api and not internal and resp.status != 401:
            resp.headers.setdefault("Sforce-Limit-Info", self.limit_header())
        return resp

    @contextlib.contextmanager
    def serving(self):
        """Counts a request in flight, so shutdown can wait for it before closing the store."""
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def dispatch_internal(self, method: str, url: str, body: object, user_id: str) -> Response:
        """Run a Composite subrequest through the same routes, without counting or re-authenticating."""
        parts = urlsplit(url)
        req = Request(method=method.upper(), path=parts.path, query=_single(parts.query), headers={},
                      body=b"" if body is None else json.dumps(body).encode(), user_id=user_id)
        return self.handle(req, internal=True)

    def _log(self, req: Request, status: int) -> None:
        self.request_log.append({"method": req.method, "path": req.path, "status": status,
                                 "time": time.time(), "user_id": req.user_id})


def _single(query: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() in ("bearer", "oauth") and value.strip() else None


def _fault_response(kind: str) -> Response:
    if kind == "503":
        return Response(503, [{"errorCode": "SERVER_UNAVAILABLE",
                               "message": "Server temporarily unavailable, please retry later"}])
    if kind == "UNABLE_TO_LOCK_ROW":
        return Response(400, [{"errorCode": "UNABLE_TO_LOCK_ROW", "fields": [],
                               "message": "unable to obtain exclusive access to this record or 1 records"}])
    if kind == "REQUEST_LIMIT_EXCEEDED":
        return Response(403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}])
    return Response(401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}])


# -- HTTPS server ------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SalesforceEmulator/1.0"
    sys_version = ""
    app: EmulatorApp  # set on the subclass built per server

    def log_message(self, format: str, *args: object) -> None:  # quiet: the request log is the record
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        req = Request(method=self.command, path=parts.path, query=_single(parts.query),
                      headers={k.lower(): v for k, v in self.headers.items()}, body=body)
        try:
            with self.app.serving():
                resp = self.app.handle(req)
        except DropConnection:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = resp.encoded()
        self.send_response(resp.status)
        if payload or resp.status not in (204, 304):
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, context: ssl.SSLContext):
        super().__init__(address, handler)
        self._context = context

    def get_request(self):  # type: ignore[override]
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body go out in two writes
        return self._context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address) -> None:  # a client hanging up is not our error
        error = sys.exc_info()[0]
        if error is not None and issubclass(error, (ConnectionResetError, BrokenPipeError, ssl.SSLError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def make_server(app: EmulatorApp) -> _Server:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(app.credentials.server_cert, app.credentials.server_key)
    handler = type("EmulatorHandler", (_Handler,), {"app": app})
    server = _Server((app.settings.host, app.settings.port), handler, context)
    host = app.settings.host
    app.base_url = f"https://{host}:{server.server_address[1]}"
    return server
