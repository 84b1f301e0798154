"""Inventory endpoints: stock for one SKU and many, per warehouse, with as_of; 404 for an unknown SKU."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest


def test_one_sku_has_per_warehouse_stock_and_totals(http):
    response = http.get("/inventory/items/SKU-1001")
    assert response.status_code == 200
    item = response.json()
    assert item["sku"] == "SKU-1001"
    assert {w["code"] for w in item["warehouses"]} == {"WH-LON", "WH-FRA", "WH-NJ"}
    for w in item["warehouses"]:
        assert w["available"] == w["on_hand"] - w["reserved"]
    assert item["on_hand"] == sum(w["on_hand"] for w in item["warehouses"])
    assert item["available"] == sum(w["available"] for w in item["warehouses"])
    as_of = datetime.fromisoformat(item["as_of"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - as_of).total_seconds()) < 5


def test_unknown_sku_is_404_with_code(http):
    response = http.get("/inventory/items/SKU-9999")
    assert response.status_code == 404
    assert response.json()["code"] == "SKU_NOT_FOUND"


def test_malformed_sku_is_400(http):
    response = http.get("/inventory/items/bad%20sku")
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_SKU"


def test_many_skus_in_one_call_keep_order_and_list_unknown(http):
    response = http.post("/inventory/stock-queries", json={"skus": ["SKU-1003", "SKU-0000", "SKU-1001", "SKU-1003"]})
    assert response.status_code == 200
    body = response.json()
    assert [i["sku"] for i in body["items"]] == ["SKU-1003", "SKU-1001"]
    assert body["not_found"] == ["SKU-0000"]
    assert all(i["as_of"] == body["as_of"] for i in body["items"])


@pytest.mark.parametrize(
    ("body", "code"),
    [({}, "INVALID_QUERY"), ({"skus": []}, "INVALID_QUERY"), ({"skus": ["ok", "no way"]}, "INVALID_SKU"),
     ({"skus": [f"SKU-{i}" for i in range(201)]}, "TOO_MANY_SKUS")],
)
def test_bad_stock_queries_are_400(http, body, code):
    response = http.post("/inventory/stock-queries", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_stock_can_be_set_over_http_and_python(http, erp):
    created = http.put("/inventory/items/SKU-2001", json={"description": "New part", "warehouses": [
        {"code": "WH-LON", "on_hand": 5, "reserved": 2}]})
    assert created.status_code == 201
    assert created.json()["available"] == 3
    erp.inventory.set_stock("SKU-2001", "WH-FRA", 10)
    assert http.get("/inventory/items/SKU-2001").json()["available"] == 13
    bad = http.put("/inventory/items/SKU-2001", json={"warehouses": [{"code": "WH-LON", "on_hand": -1}]})
    assert bad.status_code == 400


def test_api_key_is_required(http, erp):
    response = http.get("/inventory/items/SKU-1001", headers={"X-Api-Key": "wrong"})
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"
    assert "erp-test-key" not in response.text


def test_reset_restores_seed_stock(http, erp):
    erp.inventory.set_stock("SKU-1001", "WH-LON", 0, 0)
    erp.reset()
    assert http.get("/inventory/items/SKU-1001").json()["available"] == 210
