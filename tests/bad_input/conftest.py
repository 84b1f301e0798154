"""Shared pieces of the bad-input suites: hypothesis settings, API Gateway proxy events built from generated
requests, the checks every answer must pass, and a record of what reached Salesforce.

Every suite drives a handler in-process, as Lambda would invoke it, with its downstream systems real local
parts (the Salesforce emulator over HTTPS, the ERP and billing stand-ins over HTTP, moto for AWS), so that
"no 5xx" means the code under test coped, not that a stub answered.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, Phase, settings

# Bounded, derandomized and without a deadline or example database: the same examples on every run and
# machine, a few seconds per endpoint. Function-scoped fixtures (moto, emulator) are shared by the examples
# of one test on purpose: each example asserts on what *it* caused (request counts before and after).
FUZZ = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])
FEW = settings(FUZZ, max_examples=25)

# What a Python traceback or a leaked exception looks like in a reply body.
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|\bat 0x[0-9a-f]{6,}")
OVERSIZED = 300 * 1024  # bigger than any message SQS (256 KB) or EventBridge (256 KB) would carry


# -- API Gateway proxy events --------------------------------------------------------------------------

def proxy_event(method: str, path: str, *, resource: str | None = None, body: bytes | None = None,
                headers: dict[str, str] | None = None, query: list[tuple[str, str]] | None = None,
                path_parameters: dict[str, str] | None = None, binary: bool = False) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy event for one request.

    The template declares no BinaryMediaTypes, so API Gateway hands every body over as text: bytes that are
    not UTF-8 become U+FFFD. `binary=True` plays an API with binary media types (or the local stack, which
    base64-encodes such bodies) instead.
    """
    headers = {"Host": "api.example.test", "X-Forwarded-Proto": "https", **(headers or {})}
    multi_query: dict[str, list[str]] = {}
    for name, value in query or []:
        multi_query.setdefault(name, []).append(value)
    text, encoded = None, False
    if body is not None and binary:
        text, encoded = base64.b64encode(body).decode(), True
    elif body is not None:
        text = body.decode("utf-8", errors="replace")
    return {
        "resource": resource or path, "path": path, "httpMethod": method.upper(),
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters, "stageVariables": None,
        "requestContext": {"resourcePath": resource or path, "httpMethod": method.upper(), "path": f"/v1{path}",
                           "stage": "v1", "requestId": str(uuid.uuid4()), "accountId": "123456789012",
                           "apiId": "fuzz", "protocol": "HTTP/1.1",
                           "identity": {"sourceIp": "203.0.113.7", "userAgent": "fuzz"}},
        "body": text, "isBase64Encoded": encoded,
    }


@dataclass
class Wire:
    """A generated request as it would travel: method, decoded path, query pairs, header strings, body bytes."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes | None


_REQUEST_ARGS = ("method", "url", "headers", "params", "data", "json", "cookies")


def wire(case: Any) -> Wire:
    """Serialise a schemathesis case the way an HTTP client would send it (requests does the encoding)."""
    kwargs = {k: v for k, v in case.as_transport_kwargs(base_url="https://api.example.test").items()
              if k in _REQUEST_ARGS}
    prepared = requests.Request(**kwargs).prepare()
    url = urlsplit(prepared.url)
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    headers = {k: v for k, v in prepared.headers.items() if not k.lower().startswith("x-schemathesis")}
    return Wire(prepared.method or case.method, unquote(url.path),
                parse_qsl(url.query, keep_blank_values=True), headers, body)


# -- what every answer must satisfy -------------------------------------------------------------------

def json_reply(response: dict[str, Any]) -> tuple[int, Any]:
    """(status, parsed JSON body) of a proxy response; fails the test if the body is not JSON."""
    status = response["statusCode"]
    raw = response.get("body") or ""
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    try:
        return status, json.loads(raw)
    except ValueError:
        pytest.fail(f"answer {status} is not JSON: {raw[:300]!r}")


def assert_clean_error(response: dict[str, Any], *, code_keys: tuple[str, ...] = ("code", "error")) -> tuple[int, Any]:
    """No 5xx, a JSON body, and for an error a machine-readable code plus a message naming the problem;
    nothing that looks like a stack trace."""
    status, body = json_reply(response)
    assert status < 500, f"{status} for a client's request: {body}"
    assert not TRACEBACK.search(response.get("body") or ""), f"stack trace in the answer: {body}"
    if status >= 400:
        assert isinstance(body, dict), body
        assert any(isinstance(body.get(key), str) and body[key] for key in code_keys), f"no error code: {body}"
        assert isinstance(body.get("message"), str), f"no message: {body}"
        assert body["message"].strip(), f"empty message: {body}"
    return status, body


# -- Salesforce: what was written, and which queries were sent ----------------------------------------

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def salesforce_writes(emulator: Any) -> list[dict[str, Any]]:
    """API requests that can change data (the OAuth token endpoint is not one)."""
    return [r for r in emulator.requests()
            if r["method"] in WRITE_METHODS and r["path"].startswith("/services/data/")]


class QueryLog:
    """Every SOQL statement the layer sent, read off the wire by a `requests` response hook on its session."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        url = urlsplit(response.request.url or "")
        if re.search(r"/services/data/v[\d.]+/query(All)?/?$", url.path):
            self.statements += [value for name, value in parse_qsl(url.query, keep_blank_values=True) if name == "q"]
        return response

    def clear(self) -> None:
        self.statements.clear()


@pytest.fixture
def soql_log(salesforce: Any) -> Iterator[QueryLog]:
    """The statements sent through the layer's session during the test (the layer is re-created per test)."""
    from salesforce_access import get_access

    log = QueryLog()
    hooks = get_access().session.hooks.setdefault("response", [])
    hooks.append(log)
    yield log
    if log in hooks:
        hooks.remove(log)


# -- malformed payloads shared by the event-parser suites ------------------------------------------------

def deeply_nested(depth: int = 100_000) -> str:
    """Valid-looking JSON that exhausts a recursive parser's stack."""
    return "[" * depth + "]" * depth


def truncations(text: str, points: int = 12) -> list[str]:
    """`text` cut at `points` evenly spread positions (never empty, never whole)."""
    step = max(len(text) // (points + 1), 1)
    return [text[:cut] for cut in range(step, len(text), step)][:points]


Invoke = Callable[..., dict[str, Any]]
