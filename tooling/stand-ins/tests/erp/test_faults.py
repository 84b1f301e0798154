"""Faults and controls: every kind, counts, path filters, latency, going down, the request log."""

from __future__ import annotations

import time

import pytest
import requests


def test_status_faults_apply_count_times_then_clear(http, erp):
    erp.inject("503", count=2)
    statuses = [http.get("/inventory/items/SKU-1001").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    erp.inject("500")
    response = http.get("/inventory/items/SKU-1001")
    assert (response.status_code, response.json()["code"]) == (500, "INTERNAL_ERROR")
    erp.inject("429")
    assert http.get("/inventory/items/SKU-1001").headers["Retry-After"] == "1"


def test_fault_filters_by_method_and_path(http, erp):
    erp.inject("500", count=None, method="POST", path=r"^/inventory/stock-queries$")
    assert http.get("/inventory/items/SKU-1001").status_code == 200
    assert http.post("/inventory/stock-queries", json={"skus": ["SKU-1001"]}).status_code == 500
    assert http.post("/inventory/stock-queries", json={"skus": ["SKU-1001"]}).status_code == 500
    erp.clear_faults()
    assert http.post("/inventory/stock-queries", json={"skus": ["SKU-1001"]}).status_code == 200


def test_drop_closes_the_connection_without_an_answer(http, erp):
    erp.inject("drop")
    with pytest.raises(requests.ConnectionError):
        http.get("/inventory/items/SKU-1001")
    assert http.get("/inventory/items/SKU-1001").status_code == 200


def test_hang_outlasts_the_client_timeout(http, erp):
    erp.inject("hang", delay_seconds=5)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        http.get("/inventory/items/SKU-1001", timeout=(1, 0.3))
    assert time.monotonic() - started < 2


def test_malformed_answers_200_with_a_body_that_is_not_json(http, erp):
    erp.inject("malformed")
    response = http.get("/inventory/items/SKU-1001")
    assert response.status_code == 200
    with pytest.raises(ValueError):  # noqa: PT011 - any JSON decoding error
        response.json()


def test_latency_fault_and_persistent_latency(http, erp):
    erp.inject("latency", delay_seconds=0.3)
    started = time.monotonic()
    assert http.get("/inventory/items/SKU-1001").status_code == 200
    assert time.monotonic() - started >= 0.3
    assert http.put("/__control/latency", json={"seconds": 0.2}).json() == {"seconds": 0.2, "jitter_seconds": 0.0}
    started = time.monotonic()
    http.get("/inventory/items/SKU-1002")
    assert time.monotonic() - started >= 0.2
    assert http.put("/__control/latency", json={"seconds": -1}).status_code == 400


def test_down_over_http_answers_503_until_cleared_while_control_still_works(http, erp):
    added = http.post("/__control/faults", json={"kind": "down"})
    assert added.status_code == 201
    assert added.json()["remaining"] is None
    for _ in range(3):
        response = http.get("/inventory/items/SKU-1001")
        assert (response.status_code, response.json()["code"]) == (503, "ERP_DOWN")
    assert [f["kind"] for f in http.get("/__control/faults").json()] == ["down"]
    assert http.delete("/__control/faults").status_code == 204
    assert http.get("/inventory/items/SKU-1001").status_code == 200


def test_go_down_refuses_connections_cuts_open_ones_and_come_up_keeps_port_and_state(http, erp):
    erp.inventory.set_stock("SKU-1001", "WH-LON", 1, 0)
    url = erp.url
    assert http.get("/inventory/items/SKU-1001").status_code == 200  # leaves a keep-alive connection open
    erp.go_down()
    with pytest.raises(requests.ConnectionError):
        http.get("/inventory/items/SKU-1001")
    erp.come_up()
    assert erp.url == url
    assert http.get("/inventory/items/SKU-1001").json()["warehouses"][1]["on_hand"] == 1


@pytest.mark.parametrize(
    "spec",
    [{"kind": "teapot"}, {"kind": "500", "count": 0}, {"kind": "latency"}, {"kind": "500", "path": "("},
     {"kind": "500", "colour": "red"}],
)
def test_bad_fault_specs_are_400(http, spec):
    response = http.post("/__control/faults", json=spec)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_FAULT"


def test_request_log_records_calls_but_not_control_or_the_api_key(http, erp):
    erp.inject("503")
    http.get("/inventory/items/SKU-1001", params={"trace": "1"})
    http.get("/inventory/items/SKU-1001")
    http.get("/__control/faults")
    log = http.get("/__control/requests").json()
    assert [(e["path"], e["status"], e["fault"]) for e in log] == [
        ("/inventory/items/SKU-1001", 503, "503"), ("/inventory/items/SKU-1001", 200, None)]
    assert log[0]["query"] == {"trace": "1"}
    assert "erp-test-key" not in str(log)
    assert http.delete("/__control/requests").status_code == 204
    assert erp.requests() == []


def test_unknown_route_and_method(http):
    assert http.get("/nothing/here").json()["code"] == "NOT_FOUND"
    response = http.delete("/inventory/items/SKU-1001")
    assert (response.status_code, response.json()["code"]) == (405, "METHOD_NOT_ALLOWED")


def test_customer_counts_are_a_control_endpoint(http, erp):
    assert http.get("/__control/customers/counts").json() == {"customers": 3, "linked": 0, "active": 3}
    http.put("/customers/by-salesforce-id/001000000000001AAA", json={"name": "Linked", "active": False})
    http.post("/customers", json={"name": "Unlinked"})
    assert requests.get(f"{erp.url}/__control/customers/counts", timeout=5).json() == {  # no API key needed
        "customers": 5, "linked": 1, "active": 4}
    assert [r["path"] for r in erp.requests() if r["path"].startswith("/__control")] == []  # never logged
