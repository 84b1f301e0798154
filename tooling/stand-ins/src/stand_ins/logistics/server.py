"""The carrier as a process: an HTTP API on loopback to start journeys and read what was delivered, with
the control endpoints every stand-in of this project has (faults, request log). Contract: README.md."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .carrier import JOURNEY, Carrier, arrange, journey

MAX_BODY = 64 * 1024


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise HttpError(400, "invalid_request", f"{name} must be a number from {low} to {high}")
    return float(value)


class LogisticsApp:
    """Routes and state (in memory): the carrier, its deliveries, the request log."""

    def __init__(self, carrier: Carrier):
        self.carrier = carrier
        self.request_log: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.routes: list[tuple[str, re.Pattern[str], Callable[[dict[str, Any]], tuple[int, Any]]]] = [
            ("GET", re.compile(r"^/health$"), lambda _: (200, {"status": "ok", "sink": carrier.sink.name})),
            ("POST", re.compile(r"^/shipments$"), self.start_journey),
            ("GET", re.compile(r"^/deliveries$"), lambda _: (200, {"items": carrier.log()})),
            ("POST", re.compile(r"^/__control/faults$"), self.add_fault),
            ("GET", re.compile(r"^/__control/faults$"), lambda _: (200, {"items": [
                {"kind": k, "count": c} for k, c in carrier.faults]})),
            ("DELETE", re.compile(r"^/__control/faults$"), self.clear_faults),
            ("GET", re.compile(r"^/__control/requests$"), lambda _: (200, {"items": self.requests()})),
            ("DELETE", re.compile(r"^/__control/requests$"), self.clear_requests),
            ("POST", re.compile(r"^/__control/reset$"), self.reset),
        ]

    # -- routes ---------------------------------------------------------------------------------------

    def start_journey(self, body: dict[str, Any]) -> tuple[int, Any]:
        tracking_number = body.get("tracking_number")
        if not isinstance(tracking_number, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}", tracking_number):
            raise HttpError(400, "invalid_request", "tracking_number is required (letters, digits, dashes)")
        statuses = body.get("statuses", list(JOURNEY))
        if not isinstance(statuses, list) or not statuses or not all(isinstance(s, str) for s in statuses):
            raise HttpError(400, "invalid_request", "statuses must be a non-empty list of strings")
        start = None
        if body.get("start") is not None:
            try:
                start = datetime.fromisoformat(str(body["start"]))
            except ValueError:
                raise HttpError(400, "invalid_request", "start must be an ISO 8601 time with a zone") from None
            if start.tzinfo is None:
                raise HttpError(400, "invalid_request", "start must be an ISO 8601 time with a zone")
        step = _number(body, "step_minutes", 180, 0, 60 * 24 * 30)
        interval = _number(body, "interval_seconds", 0, 0, 60)
        batch_size = int(_number(body, "batch_size", 1, 1, 50))
        duplicates = int(_number(body, "duplicates", 0, 0, 100))
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise HttpError(400, "invalid_request", "seed must be an integer")
        try:
            events = arrange(journey(tracking_number, statuses=statuses, start=start, step=timedelta(minutes=step),
                                     carrier=str(body.get("carrier", "Local Parcel")), location=body.get("location"),
                                     order_number=body.get("order_number")),
                             str(body.get("order", "in-order")), seed=seed, duplicates=duplicates)
        except ValueError as exc:
            raise HttpError(400, "invalid_request", str(exc)) from None
        if body.get("wait", True):
            deliveries = self.carrier.ship(events, interval=interval, batch_size=batch_size)
            return 200, {"events": events, "deliveries": [d.to_dict() for d in deliveries]}
        thread = threading.Thread(target=self.carrier.ship, args=(events,),
                                  kwargs={"interval": interval, "batch_size": batch_size}, daemon=True)
        thread.start()
        self.threads.append(thread)
        return 202, {"events": events}

    def add_fault(self, body: dict[str, Any]) -> tuple[int, Any]:
        try:
            self.carrier.inject(str(body.get("kind")), int(body.get("count", 1)))
        except (ValueError, TypeError) as exc:
            raise HttpError(400, "invalid_request", str(exc)) from None
        return 201, {"kind": body.get("kind"), "count": int(body.get("count", 1))}

    def clear_faults(self, _: dict[str, Any]) -> tuple[int, Any]:
        with self.carrier.lock:
            self.carrier.faults.clear()
        return 204, None

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.request_log)

    def clear_requests(self, _: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            self.request_log.clear()
        return 204, None

    def reset(self, _: dict[str, Any]) -> tuple[int, Any]:
        self.carrier.reset()
        with self.lock:
            self.request_log.clear()
        return 204, None

    # -- dispatch -------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        try:
            matches = [r for r in self.routes if r[1].match(path)]
            if not matches:
                raise HttpError(404, "not_found", f"no resource {path}")
            route = next((r for r in matches if r[0] == method), None)
            if route is None:
                raise HttpError(405, "method_not_allowed", f"{method} is not allowed on {path}")
            body: Any = {}
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise HttpError(400, "invalid_json", "the body is not JSON") from None
                if not isinstance(body, dict):
                    raise HttpError(400, "invalid_json", "the body must be a JSON object")
            return route[2](body)
        except HttpError as exc:
            return exc.status, {"error": exc.code, "message": str(exc)}
        except Exception as exc:  # a stand-in bug: a JSON 500, the traceback stays in the process
            return 500, {"error": "internal_error", "message": type(exc).__name__}


def make_server(app: LogisticsApp, host: str, port: int) -> ThreadingHTTPServer:
    class _Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                status, payload = 413, {"error": "payload_too_large", "message": f"at most {MAX_BODY} bytes"}
            else:
                path = self.path.split("?", 1)[0]
                status, payload = app.handle(self.command, path, self.rfile.read(length) if length else b"")
            with app.lock:
                app.request_log.append({"method": self.command, "path": self.path, "status": status,
                                        "time": time.time()})
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), _Handler)
