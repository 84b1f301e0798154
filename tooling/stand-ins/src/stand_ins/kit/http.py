"""Requests, replies, errors and routing: what a stand-in's route handlers see and return."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


class HttpError(Exception):
    """An error answer: the stand-in's envelope ({"error"|"code": code, "message": ...}, extra keys) and a status."""

    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass(frozen=True)
class Envelope:
    """How one stand-in spells its errors: the code's key, upper-case codes, and its names for the kit's codes."""

    key: str = "error"
    upper: bool = False
    renames: dict[str, str] = field(default_factory=dict)

    def code(self, code: str) -> str:
        code = self.renames.get(code, code)
        return code.upper() if self.upper else code

    def reply(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
              **extra: Any) -> Reply:
        return Reply(status, {self.key: self.code(code), "message": message, **extra}, dict(headers or {}))


@dataclass
class Request:
    """One HTTP request; ``body`` is read from the socket only when first used (a fault may drop it unread)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    read_body: Callable[[], bytes] = field(default=lambda: b"", repr=False)
    params: dict[str, str] = field(default_factory=dict)

    @cached_property
    def body(self) -> bytes:
        return self.read_body()

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def json(self) -> Any:
        if not self.body.strip():
            raise HttpError(400, "invalid_json", "the request body is empty; a JSON document is required")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None

    def json_object(self, *, empty: dict[str, Any] | None = None) -> dict[str, Any]:
        """The body as a JSON object; ``empty`` is returned for a body-less request when given."""
        if empty is not None and not self.body.strip():
            return empty
        body = self.json()
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_json", "the request body must be a JSON object")
        return body


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable, raw bytes, or None for no body
    headers: dict[str, str | list[str]] = field(default_factory=dict)  # a list: the header sent once per value
    content_type: str | None = None  # default: application/json, text/html for bytes

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")

    def media_type(self) -> str:
        return self.content_type or ("text/html" if isinstance(self.body, bytes) else "application/json")


Route = Callable[[Request], Reply]


class Router:
    """Paths like ``/customers/{customer_id}``: each ``{name}`` matches one path segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Route]] = []

    def add(self, method: str, template: str, handler: Route) -> None:
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        self._routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

    def resolve(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(handler, path parameters, path known under another method)."""
        known = False
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match:
                if route_method == method:
                    return handler, match.groupdict(), True
                known = True
        return None, {}, known
