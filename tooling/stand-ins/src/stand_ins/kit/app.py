"""The request pipeline every stand-in shares: control routes, faults, latency, authorisation, routing and the
request log, independent of the socket server (server.py) so the Python API and HTTP act on the same state."""

from __future__ import annotations

import collections
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from .faults import Action, Fault, Faults
from .http import Envelope, HttpError, Reply, Request, Router

CONTROL_PREFIX = "/__control/"


class DropConnection(Exception):
    """Close the socket without an HTTP answer."""


class RequestLog:
    """What the stand-in was asked, for tests: an entry when a request arrives, completed when it is answered
    (a test sees a hanging call as ``status: null``). Never headers unless named: they may carry keys."""

    def __init__(self, headers: tuple[str, ...] = (), bodies: bool = False, limit: int = 100_000):
        self.headers, self.bodies = headers, bodies
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=limit)
        self._lock = threading.Lock()

    def open(self, req: Request, fault: Fault | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"time": time.time(), "method": req.method, "path": req.path,
                                 "query": {k: v[-1] for k, v in req.query.items()}}
        if self.headers:
            entry["headers"] = {k: v for k, v in req.headers.items() if k in self.headers}
        if self.bodies:
            entry["body"] = _body_for_log(req.body)
        entry.update({"status": None, "fault": fault.kind.name if fault else None, "duration_ms": None})
        with self._lock:
            self._entries.append(entry)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _body_for_log(body: bytes) -> Any:
    import json

    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


class StandInApp:
    """Routes and the pipeline. A stand-in registers its routes on ``router`` and sets its ``faults``."""

    def __init__(self, name: str, *, envelope: Envelope | None = None, faults: Faults | None = None,
                 log: RequestLog | None = None, latency_seconds: float = 0.0, jitter_seconds: float = 0.0,
                 authorize: Callable[[Request], Reply | None] | None = None, max_body: int | None = None):
        self.name = name
        self.envelope = envelope or Envelope()
        self.faults = faults
        self.request_log = log or RequestLog()
        self.latency_seconds, self.jitter_seconds = latency_seconds, jitter_seconds
        self.authorize = authorize
        self.max_body = max_body
        self.router = Router()
        self.lock = threading.RLock()  # guards the stand-in's domain state (handlers run in threads)
        self.stopping = threading.Event()  # wakes held and delayed requests when the server stops

    def set_latency(self, seconds: float, jitter_seconds: float = 0.0) -> None:
        self.latency_seconds, self.jitter_seconds = float(seconds), float(jitter_seconds)

    def handle(self, req: Request, content_length: int = 0) -> Reply:
        """One request through control routing, faults, latency, authorisation and the routes.
        Raises DropConnection where a fault says the caller gets no answer."""
        if req.path.startswith(CONTROL_PREFIX):  # never faulted, never logged
            return self.route(req)
        if self.max_body is not None and content_length > self.max_body:
            return self.envelope.reply(413, "payload_too_large", f"at most {self.max_body} bytes")
        fault = self.faults.take(req.method, req.path) if self.faults else None
        action = fault.kind.action if fault else None
        if action is Action.DROP_UNREAD:
            raise DropConnection
        started = time.monotonic()
        entry = self.request_log.open(req, fault)
        try:
            reply = self._faulted(req, fault)
        finally:
            entry["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        entry["status"] = reply.status
        if action is Action.LOST_RESPONSE:
            raise DropConnection
        return reply

    def _faulted(self, req: Request, fault: Fault | None) -> Reply:
        delay = self.latency_seconds + (random.uniform(0, self.jitter_seconds) if self.jitter_seconds else 0.0)
        action = fault.kind.action if fault else None
        if fault is not None and action is Action.DELAY:
            delay += fault.delay_seconds or 0.0
        if delay > 0:
            self.stopping.wait(delay)
        if fault is not None:
            if action is Action.HOLD:
                self.stopping.wait(fault.delay_seconds or 0.0)
                raise DropConnection
            if action is Action.DROP:
                raise DropConnection
            if action is Action.REPLY and fault.kind.reply is not None:
                return fault.kind.reply()
        if self.authorize is not None:
            refused = self.authorize(req)
            if refused is not None:
                return refused
        return self.route(req)

    def route(self, req: Request) -> Reply:
        handler, params, known = self.router.resolve(req.method, req.path)
        if handler is None:
            if known:
                return self.envelope.reply(405, "method_not_allowed", f"{req.method} is not allowed on {req.path}")
            return self.envelope.reply(404, "not_found", f"no resource at {req.path}")
        req.params = params
        try:
            return handler(req)
        except HttpError as exc:
            return self.envelope.reply(exc.status, exc.code, exc.message, **exc.extra)
        except Exception:  # a bug in the stand-in: an opaque 500 for the client, the traceback on stderr
            print(f"{self.name} error on {req.method} {req.path}", file=sys.stderr)
            traceback.print_exc()
            return self.envelope.reply(500, "internal_error", f"an unexpected error occurred in the {self.name}")
