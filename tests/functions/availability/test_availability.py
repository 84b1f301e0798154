"""Availability for one and many SKUs, and every client error, through the Lambda handler and the ERP
stand-in over HTTP."""

from __future__ import annotations

import json

import pytest
from availability.models import MAX_ITEMS

from .conftest import api_event

ONE = "/products/{}/availability"


def test_one_sku_is_answered_from_the_erp(invoke, erp):
    reply = invoke("GET", ONE.format("SKU-1001"), query={"quantity": "25"})
    assert reply.status == 200
    body = reply.body
    erp_item = erp.inventory.get("SKU-1001").as_json("x")
    assert body["sku"] == "SKU-1001"
    assert body["requested_quantity"] == 25
    assert body["available"] is True
    assert body["stale"] is False
    assert (body["quantity_on_hand"], body["quantity_available"]) == (erp_item["on_hand"], erp_item["available"])
    assert {w["code"]: w["quantity_available"] for w in body["warehouses"]} == {
        w["code"]: w["available"] for w in erp_item["warehouses"]}
    assert body["as_of"].endswith("Z")
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["Cache-Control"] == "no-store"


def test_not_enough_stock_is_available_false(invoke, erp):
    erp.inventory.set_stock("SKU-1003", "WH-LON", 10, 0)  # WH-LON 10 + WH-FRA 10 + WH-NJ 30
    assert invoke("GET", ONE.format("SKU-1003"), query={"quantity": "50"}).body["available"] is True
    reply = invoke("GET", ONE.format("SKU-1003"), query={"quantity": "51"})
    assert (reply.status, reply.body["available"], reply.body["quantity_available"]) == (200, False, 50)


def test_quantity_defaults_to_one(invoke):
    body = invoke("GET", ONE.format("SKU-1004")).body  # sold out everywhere
    assert (body["requested_quantity"], body["available"], body["quantity_available"]) == (1, False, 0)


def test_many_skus_in_one_call_with_one_erp_call(invoke, erp_calls):
    items = [{"sku": "SKU-1009", "quantity": 1000}, {"sku": "SKU-0404"}, {"sku": "SKU-1001", "quantity": 5},
             {"sku": "SKU-1009", "quantity": 2000}]
    reply = invoke("POST", "/availability", body={"items": items})
    assert reply.status == 200
    results = reply.body["results"]
    assert [(r["sku"], r["requested_quantity"], r["available"]) for r in results] == [
        ("SKU-1009", 1000, True), ("SKU-1001", 5, True), ("SKU-1009", 2000, False)]
    assert reply.body["not_found"] == ["SKU-0404"]
    assert reply.body["stale"] is False
    assert erp_calls() == [("POST", "/inventory/stock-queries")]


def test_a_batch_of_the_maximum_size_is_answered(invoke, erp):
    for i in range(MAX_ITEMS):
        erp.inventory.set_stock(f"SKU-{5000 + i}", "WH-LON", i)
    items = [{"sku": f"SKU-{5000 + i}", "quantity": 1} for i in range(MAX_ITEMS)]
    results = invoke("POST", "/availability", body={"items": items}).body["results"]
    assert [r["available"] for r in results] == [False] + [True] * (MAX_ITEMS - 1)


def test_unknown_sku_is_404(invoke):
    reply = invoke("GET", ONE.format("SKU-0404"))
    assert reply.status == 404
    assert reply.body == {"error": "SKU_NOT_FOUND", "message": "the ERP has no product with SKU SKU-0404"}


@pytest.mark.parametrize(
    ("sku", "query", "code"),
    [("bad sku!", None, "INVALID_SKU"), ("-leading-dash", None, "INVALID_SKU"), ("S" * 65, None, "INVALID_SKU"),
     ("SKU-1001", {"quantity": "0"}, "INVALID_QUANTITY"), ("SKU-1001", {"quantity": "abc"}, "INVALID_QUANTITY"),
     ("SKU-1001", {"quantity": "2.5"}, "INVALID_QUANTITY"), ("SKU-1001", {"quantity": "1000001"}, "INVALID_QUANTITY")],
)
def test_malformed_sku_or_quantity_is_400_and_never_reaches_the_erp(invoke, erp_calls, sku, query, code):
    reply = invoke("GET", ONE.format(sku), query=query)
    assert reply.status == 400
    assert reply.body["error"] == code
    assert set(reply.body) == {"error", "message"}
    assert erp_calls() == []


@pytest.mark.parametrize(
    ("kwargs", "code", "in_message"),
    [({"raw_body": "{not json"}, "INVALID_JSON", "not valid JSON"),
     ({"body": {}}, "INVALID_REQUEST", "items"),
     ({"body": {"items": []}}, "INVALID_REQUEST", "items"),
     ({"body": {"items": [{"sku": "SKU-1001"}] * (MAX_ITEMS + 1)}}, "INVALID_REQUEST", "items"),
     ({"body": {"items": [{"sku": "SKU-1001"}, {"sku": "no good"}]}}, "INVALID_SKU", "items.1.sku"),
     ({"body": {"items": [{"sku": "SKU-1001", "quantity": -1}]}}, "INVALID_QUANTITY", "items.0.quantity"),
     ({"body": {"items": [{"sku": "SKU-1001", "qty": 2}]}}, "INVALID_REQUEST", "items.0.qty"),
     ({"body": ["SKU-1001"]}, "INVALID_REQUEST", "body")],
)
def test_malformed_batch_is_400_naming_the_problem(invoke, erp_calls, kwargs, code, in_message):
    reply = invoke("POST", "/availability", **kwargs)
    assert reply.status == 400
    assert reply.body["error"] == code
    assert in_message in reply.body["message"]
    assert "Traceback" not in reply.body["message"]
    assert erp_calls() == []


@pytest.mark.parametrize("quantity", ["5", "", True, False, [5], {"n": 5}, 2.5])
def test_a_body_quantity_must_be_a_json_number(invoke, erp_calls, quantity):
    """The body is JSON: "5" is a string and true a boolean, not quantities (only the query string is text)."""
    reply = invoke("POST", "/availability", body={"items": [{"sku": "SKU-1001"}, {"sku": "SKU-1004",
                                                                                 "quantity": quantity}]})
    assert (reply.status, reply.body["error"]) == (400, "INVALID_QUANTITY"), reply.body
    assert "items.1.quantity" in reply.body["message"]
    assert erp_calls() == []


@pytest.mark.parametrize("quantity", [5, 5.0])
def test_a_whole_json_number_is_a_quantity(invoke, quantity):
    reply = invoke("POST", "/availability", body={"items": [{"sku": "SKU-1001", "quantity": quantity}]})
    assert reply.status == 200, reply.body
    assert reply.body["results"][0]["requested_quantity"] == 5


@pytest.mark.parametrize(("method", "path"), [("GET", "/products"), ("DELETE", "/availability"), ("GET", "/")])
def test_unknown_routes_are_json_404(invoke, method, path):
    reply = invoke(method, path)
    assert reply.status == 404
    assert reply.body["error"] == "NOT_FOUND"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_is_a_415_in_the_envelope(handler_module, configure, lambda_context, erp_calls,
                                                          content_type):
    event = api_event("POST", "/availability", raw_body="items=SKU-1001")
    event["headers"] = {"Content-Type": content_type}
    event["multiValueHeaders"] = {"Content-Type": [content_type]}
    response = handler_module.handler(event, lambda_context)
    assert response["statusCode"] == 415
    assert json.loads(response["body"]) == {"error": "UNSUPPORTED_MEDIA_TYPE",
                                            "message": "the request body must be application/json"}
    assert erp_calls() == []


def test_a_bug_is_a_500_with_a_reference_to_the_log(invoke, handler_module, monkeypatch, lambda_context):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug with secret-internal-detail")

    monkeypatch.setattr(handler_module, "check_one", broken)
    reply = invoke("GET", ONE.format("SKU-1001"), context=lambda_context)
    assert reply.status == 500
    assert reply.body == {"error": "INTERNAL_ERROR", "message": "an unexpected error occurred; it has been logged",
                          "reference": lambda_context.aws_request_id}
    assert reply.headers["Cache-Control"] == "no-store"
