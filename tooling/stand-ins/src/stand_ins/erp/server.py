"""The ERP stand-in on the shared kit (stand_ins.kit): its error envelope, fault kinds and API-key check.

Errors are ``{"code": "UPPER_CASE", "message": ...}``; the kit's routing, fault pipeline, request log and
loopback server do the rest.
"""

from __future__ import annotations

from collections.abc import Callable

from stand_ins.kit import Action, Envelope, FaultKind, Faults, HttpError, Reply, Request, StandInApp

__all__ = ["FAULT_KINDS", "ErpApp", "ErpError", "Reply", "Request"]

ENVELOPE = Envelope(key="code", upper=True)


def _error(status: int, code: str, message: str, **headers: str) -> Callable[[], Reply]:
    return lambda: ENVELOPE.reply(status, code, message, dict(headers))


KINDS = (
    FaultKind("latency", Action.DELAY, needs_delay=True),
    FaultKind("hang", Action.HOLD, default_delay=30.0),
    FaultKind("500", Action.REPLY, _error(500, "INTERNAL_ERROR", "an unexpected error occurred in the ERP")),
    FaultKind("503", Action.REPLY, _error(503, "SERVICE_UNAVAILABLE", "the ERP is temporarily unavailable",
                                          **{"Retry-After": "1"})),
    FaultKind("429", Action.REPLY, _error(429, "TOO_MANY_REQUESTS", "rate limit exceeded", **{"Retry-After": "1"})),
    FaultKind("drop", Action.DROP),
    FaultKind("down", Action.REPLY, _error(503, "ERP_DOWN", "the ERP is down for maintenance",
                                           **{"Retry-After": "30"}), until_cleared=True),
    FaultKind("malformed", Action.REPLY, lambda: Reply(200, b"<html>Gateway page</html>")),
)
FAULT_KINDS = frozenset(kind.name for kind in KINDS)
"""latency: answer normally after ``delay_seconds``; hang: send nothing for ``delay_seconds`` (default 30),
then close; 500/503/429: that status with a JSON error; drop: close the connection without an answer;
down: 503 ``ERP_DOWN`` for every request until cleared; malformed: 200 with a body that is not JSON."""


class ErpError(HttpError):
    """An error answer: ``{"code": ..., "message": ...}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(status, code, message)


class ErpApp(StandInApp):
    """The kit's pipeline with the ERP's envelope, faults and optional ``X-Api-Key`` check; the domain modules
    (inventory.py, customers.py) register their routes on it."""

    def __init__(self, api_key: str | None = None, latency_seconds: float = 0.0, jitter_seconds: float = 0.0):
        self.api_key = api_key
        super().__init__("ERP", envelope=ENVELOPE, latency_seconds=latency_seconds, jitter_seconds=jitter_seconds,
                         faults=Faults(KINDS, error_code="INVALID_FAULT", count_key="remaining",
                                       allow_until_cleared=True, no_delay=0.0),
                         authorize=self._check_key)

    def _check_key(self, req: Request) -> Reply | None:
        if self.api_key is not None and req.headers.get("x-api-key") != self.api_key:
            return ENVELOPE.reply(401, "UNAUTHORIZED", "a valid X-Api-Key header is required")
        return None
