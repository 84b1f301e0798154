"""Request, response and routing types shared by every resource module.

Written on the standard library's HTTP server rather than a web framework because the fault injector
must be able to drop a TCP connection mid-request, and the emulator should start with no dependency
beyond ``cryptography`` (TLS certificates) and PyJWT.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from .errors import ApiError


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    match: dict[str, str] = field(default_factory=dict)
    user_id: str | None = None  # set by the authenticator for API routes
    token: str | None = None

    @property
    def api_version(self) -> str:
        return self.match.get("version", "")

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self, *, allow_empty: bool = False) -> object:
        if not self.body.strip():
            if allow_empty:
                return None
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body is empty; a JSON document is required")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character in JSON body: {exc}") from None

    def form(self) -> dict[str, str]:
        try:
            parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return {}
        return {k: v[-1] for k, v in parsed.items()}


@dataclass
class Response:
    status: int = 200
    body: object = None  # JSON-serialisable value, bytes, or None for no body
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json;charset=UTF-8"

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    api: bool  # counted against the API allocation, needs a token, carries Sforce-Limit-Info


VERSION = r"v(?P<version>\d{2}\.\d)"


class Router:
    """Routes are regular expressions over the path; ``{version}`` style is spelled out in the regex."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, api: bool = True) -> None:
        self._routes.append(Route(method.upper(), re.compile(f"^{pattern}$"), handler, api))

    def api(self, method: str, subpath: str, handler: Handler) -> None:
        """A route under ``/services/data/vNN.N/``: authenticated and counted."""
        self.add(method, rf"/services/data/{VERSION}/{subpath}", handler, api=True)

    def resolve(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path parameters, path known under another method) for one request."""
        path_known = False
        for route in self._routes:
            m = route.pattern.match(path)
            if m:
                if route.method == method:
                    return route, {k: v for k, v in m.groupdict().items() if v is not None}, True
                path_known = True
        return None, {}, path_known
