"""Fault injection: which kinds a stand-in offers, the pending faults, and what each does to a request.

A stand-in names its kinds and says what each does (one of the ``Action`` values below); the kit's request
pipeline (app.py) applies them, so dropping, holding and delaying are written once for every stand-in.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .http import HttpError, Reply


class Action(Enum):
    REPLY = "reply"  # answer the kind's reply instead of the route (nothing is written)
    DELAY = "delay"  # wait delay_seconds, then answer normally
    HOLD = "hold"  # wait delay_seconds without answering, then close the connection (a read timeout)
    DROP = "drop"  # close the connection without an answer
    DROP_UNREAD = "drop_unread"  # close the connection before reading the request (not logged)
    LOST_RESPONSE = "lost_response"  # process the request, then close the connection before the answer


@dataclass(frozen=True)
class FaultKind:
    name: str
    action: Action
    reply: Callable[[], Reply] | None = None  # for Action.REPLY
    needs_delay: bool = False  # refused without delay_seconds > 0
    default_delay: float | None = None  # used when delay_seconds is missing or 0
    until_cleared: bool = False  # a missing count means "until cleared" rather than 1


class InvalidFault(HttpError, ValueError):
    """A bad fault specification: a 400 on the control API, a ValueError from the Python API."""


@dataclass
class Fault:
    kind: FaultKind
    count: int | None  # None: until cleared
    method: str | None = None
    path: re.Pattern[str] | None = None
    delay_seconds: float | None = None

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method == method)
                and (self.path is None or self.path.search(path) is not None))


class Faults:
    """The pending faults of one stand-in, safe to use from the server's request threads."""

    FIELDS = frozenset({"kind", "count", "method", "path", "delay_seconds"})

    def __init__(self, kinds: Iterable[FaultKind], *, error_code: str = "invalid_request", name_fields: bool = False,
                 count_key: str = "count", allow_until_cleared: bool = False, no_delay: float | None = None):
        """``error_code``/``name_fields``: how a bad specification is answered (with a ``field`` key or not);
        ``count_key``: the name of the remaining count in a described fault; ``no_delay``: delay_seconds shown
        for a fault given none."""
        self.kinds = {kind.name: kind for kind in kinds}
        self.error_code, self.name_fields, self.count_key = error_code, name_fields, count_key
        self.allow_until_cleared, self.no_delay = allow_until_cleared, no_delay
        self._pending: list[Fault] = []
        self._lock = threading.Lock()

    def _invalid(self, name: str, message: str) -> InvalidFault:
        return InvalidFault(400, self.error_code, message, **({"field": name} if self.name_fields else {}))

    def add(self, kind: object, count: object = ..., method: object = None, path: object = None,
            delay_seconds: object = None) -> Fault:
        """Validate a specification (from the control API or the Python API) and make it pending.
        ``count`` left out: 1, or until cleared for a kind that says so."""
        spec = self.kinds.get(kind) if isinstance(kind, str) else None
        if spec is None:
            raise self._invalid("kind", f"kind must be one of {sorted(self.kinds)}")
        if count is ...:
            count = None if spec.until_cleared and self.allow_until_cleared else 1
        if count is None and not self.allow_until_cleared:
            raise self._invalid("count", "count must be a positive integer")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise self._invalid("count", "count must be a positive integer" +
                                (", or null for until cleared" if self.allow_until_cleared else ""))
        if method is not None and not isinstance(method, str):
            raise self._invalid("method", "method must be a string")
        if path is not None and not isinstance(path, str):
            raise self._invalid("path", "path must be a string (a regular expression)")
        try:
            pattern = re.compile(path) if path else None
        except re.error as exc:
            raise self._invalid("path", f"path is not a valid regular expression: {exc}") from None
        try:
            delay = float(delay_seconds) if delay_seconds is not None else None  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise self._invalid("delay_seconds", "delay_seconds must be a number") from None
        if spec.needs_delay and not (delay and delay > 0):
            raise self._invalid("delay_seconds", f"a {spec.name} fault needs delay_seconds > 0")
        if not delay and spec.default_delay is not None:
            delay = spec.default_delay
        fault = Fault(spec, count, method.upper() if isinstance(method, str) else None, pattern,
                      delay if delay is not None else self.no_delay)
        with self._lock:
            self._pending.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first pending fault matching this request, one use of it spent."""
        with self._lock:
            for fault in self._pending:
                if fault.matches(method, path):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self._pending.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def describe(self, fault: Fault) -> dict[str, Any]:
        return {"kind": fault.kind.name, self.count_key: fault.count, "method": fault.method,
                "path": fault.path.pattern if fault.path else None, "delay_seconds": fault.delay_seconds}

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self.describe(f) for f in self._pending]

    def add_from(self, spec: dict[str, Any]) -> dict[str, Any]:
        """POST /__control/faults: a JSON specification, unknown fields refused."""
        unknown = sorted(set(spec) - self.FIELDS)
        if unknown:
            raise self._invalid(unknown[0], f"unknown field(s): {', '.join(unknown)}")
        fault = self.add(spec.get("kind"), spec.get("count", ...), spec.get("method"), spec.get("path"),
                         spec.get("delay_seconds"))
        return self.describe(fault)
