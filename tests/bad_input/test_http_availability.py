"""Pattern 1's API fuzzed from docs/api/availability-openapi.yaml: requests that follow the description
(positive) and requests that break it (negative: wrong types, out-of-range numbers, bad patterns, missing and
extra properties, bodies that are not JSON), each turned into the proxy event API Gateway would send, against
the ERP stand-in over HTTP. Every answer: no 5xx, JSON, {error, message} for an error, no stack trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import event, example, given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from stand_ins.erp import ErpServer

from .conftest import FUZZ, assert_clean_error, deeply_nested, proxy_event, wire

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "api" / "availability-openapi.yaml")
GET_ONE = SCHEMA["/products/{sku}/availability"]["GET"]
POST_MANY = SCHEMA["/availability"]["POST"]
KNOWN_SKUS = ["SKU-1001", "SKU-1004", "SKU-1010"]  # seeded in the ERP stand-in


@pytest.fixture(scope="module")
def erp_server() -> Iterator[ErpServer]:
    with ErpServer() as erp:
        yield erp


@pytest.fixture
def availability(erp_server: ErpServer, monkeypatch: pytest.MonkeyPatch, lambda_context: Any):
    """The handler, started cold against the ERP stand-in (production timeouts: nothing here is slow)."""
    from availability import handler

    erp_server.come_up()
    erp_server.reset()
    monkeypatch.setenv("ERP_BASE_URL", erp_server.url)
    monkeypatch.delenv("ERP_API_KEY_SECRET_ARN", raising=False)
    handler.reset()

    def call(event: dict[str, Any]) -> dict[str, Any]:
        return handler.handler(event, lambda_context)

    yield call
    handler.reset()


def _get_event(case: Any) -> dict[str, Any]:
    request = wire(case)
    prefix, suffix = "/products/", "/availability"
    sku = request.path[len(prefix):-len(suffix)] if request.path.startswith(prefix) else ""
    return proxy_event("GET", request.path, resource="/products/{sku}/availability", headers=request.headers,
                       query=request.query, path_parameters={"sku": sku})


def _check_availability(body: dict[str, Any], sku: str | None = None) -> None:
    assert set(body) >= {"sku", "available", "quantity_on_hand", "quantity_available", "warehouses", "as_of"}
    if sku is not None:
        assert body["sku"] == sku


@given(case=st.one_of(GET_ONE.as_strategy(GenerationMode.POSITIVE), GET_ONE.as_strategy(GenerationMode.NEGATIVE)),
       known=st.sampled_from([None, *KNOWN_SKUS]))
@FUZZ
def test_get_availability_fuzzed(availability, case: Any, known: str | None) -> None:
    if known is not None:  # half the time a SKU the ERP knows, so valid requests get past the 404
        case.path_parameters = {**(case.path_parameters or {}), "sku": known}
    status, body = assert_clean_error(availability(_get_event(case)))
    event(f"status {status}")
    assert status in (200, 400, 404), body
    if status == 200:
        _check_availability(body, known)
    elif status == 400:
        assert body["error"] in ("INVALID_SKU", "INVALID_QUANTITY", "INVALID_REQUEST"), body


@given(case=st.one_of(POST_MANY.as_strategy(GenerationMode.POSITIVE),
                      POST_MANY.as_strategy(GenerationMode.NEGATIVE)))
@FUZZ
def test_post_availability_fuzzed(availability, case: Any) -> None:
    request = wire(case)
    proxy = proxy_event("POST", "/availability", headers=request.headers, body=request.body)
    status, body = assert_clean_error(availability(proxy))
    event(f"status {status}")
    assert status in (200, 400), body
    if status == 200:
        assert set(body) == {"results", "not_found", "stale"}
        asked = {item["sku"] for item in case.body["items"]}
        assert {r["sku"] for r in body["results"]} | set(body["not_found"]) == asked, body  # every SKU answered
    else:
        assert body["error"] in ("INVALID_SKU", "INVALID_QUANTITY", "INVALID_JSON", "INVALID_REQUEST"), body


@given(raw=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
@example(raw=b"")
@example(raw=b"null")
@example(raw=b'{"items": [{"sku": "SKU-1001"}]')  # truncated
@example(raw=b'{"items": "SKU-1001"}')
@example(raw=b'{"items": [{"sku": "SKU-1001", "quantity": 1e309}]}')
@example(raw=b'{"items": [{"sku": "SKU-1001", "quantity": 99999999999999999999999999}]}')
@example(raw=b'{"items": [' + b'{"sku": "SKU-1001"},' * 50 + b'{"sku": "SKU-1002"}]}')  # 51 items
@example(raw=b'{"items": [{"sku": "' + b"A" * 300_000 + b'"}]}')
@FUZZ
def test_post_availability_garbage_bodies(availability, raw: bytes) -> None:
    status, body = assert_clean_error(availability(proxy_event(
        "POST", "/availability", headers={"Content-Type": "application/json"}, body=raw)))
    assert status == 400, body


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/availability"), ("GET", "/availability"), ("PUT", "/products/SKU-1001/availability"),
    ("GET", "/products//availability"), ("GET", "/products/SKU-1001/availability/extra"), ("GET", "/"),
    ("POST", "/products/SKU-1001/availability"),
])
def test_unknown_routes_answer_json(availability, method: str, path: str) -> None:
    status, body = assert_clean_error(availability(proxy_event(method, path, body=b"{}")))
    assert status in (404, 405), body


# -- found by this suite, since fixed ------------------------------------------------------------------

def test_deeply_nested_body_is_a_400(availability) -> None:
    status, body = assert_clean_error(availability(proxy_event(
        "POST", "/availability", headers={"Content-Type": "application/json"}, body=deeply_nested(5_000).encode())))
    assert status == 400, body
    assert body["error"] == "INVALID_JSON", body


def test_binary_body_that_is_not_utf8_is_a_400(availability) -> None:
    status, body = assert_clean_error(availability(proxy_event(
        "POST", "/availability", headers={"Content-Type": "application/json"}, body=b"\x80\xff{", binary=True)))
    assert status == 400, body
    assert body["error"] == "INVALID_JSON", body
