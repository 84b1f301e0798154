"""POST /orders against the Salesforce emulator (HTTPS) and moto: writes, replays, updates and every error class."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from edge_kit.signatures import signed_headers
from salesforce_access import get_access, reset_access_cache, soql

from .conftest import api_calls, composite_calls, make_order


def sf_order(number: str) -> list[dict[str, Any]]:
    return list(get_access().query(soql(
        "SELECT Id, AccountId, Status, EffectiveDate, Pricebook2Id, ShippingCity, BillingStreet, Description "
        "FROM Order WHERE Ecommerce_Order_Number__c = {n}", n=number)))


def sf_lines(number: str) -> list[dict[str, Any]]:
    return list(get_access().query(soql(
        "SELECT Id, PricebookEntryId, Quantity, UnitPrice, Description FROM OrderItem "
        "WHERE Order.Ecommerce_Order_Number__c = {n} ORDER BY Id", n=number)))


def sf_accounts(erp_id: str) -> list[dict[str, Any]]:
    return list(get_access().query(soql("SELECT Id, Name, Phone, BillingCity FROM Account "
                                        "WHERE ERP_Customer_Id__c = {e}", e=erp_id)))


# -- writes ------------------------------------------------------------------------------------------


def test_new_order_is_written_with_its_lines_in_one_composite_call(salesforce, products, caller):
    order = make_order(products)
    reply = caller.post(order)

    assert reply.status == 201
    assert reply.body["status"] == "created"
    ids = reply.body["salesforce"]
    assert ids["account_id"].startswith("001")
    assert ids["order_id"].startswith("801")
    assert len(ids["order_item_ids"]) == 3
    # the only write is one Composite; the rest are reads (the price book look-up)
    writes = [r for r in api_calls(salesforce) if r["method"] != "GET"]
    assert [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in writes] == [("POST", "composite")]

    [account] = sf_accounts(order["customer"]["erp_customer_id"])
    assert (account["Id"], account["Name"], account["Phone"], account["BillingCity"]) == (
        ids["account_id"], "Acme Retail GmbH", "+49 30 1234", "Berlin")
    [written] = sf_order(order["order_number"])
    assert written["Id"] == ids["order_id"]
    assert written["AccountId"] == ids["account_id"]
    assert (written["Status"], written["EffectiveDate"], written["ShippingCity"]) == ("Draft", "2025-03-14", "Potsdam")
    assert written["Pricebook2Id"] == products.pricebook_id
    lines = sf_lines(order["order_number"])
    assert [line["Id"] for line in lines] == ids["order_item_ids"]
    assert [(line["PricebookEntryId"], line["Quantity"], line["UnitPrice"]) for line in lines] == [
        (products.entries[products["widget"]], 2, 19.9),
        (products.entries[products["gadget"]], 1, 249),
        (products.entries[products["gizmo"]], 5, 3.5),
    ]
    assert lines[2]["Description"] == "gift wrapped"


def test_a_warm_function_writes_a_new_order_in_exactly_one_api_call(salesforce, products, caller):
    assert caller.post(make_order(products)).status == 201  # warms the token and the price book cache
    salesforce.clear_requests()

    reply = caller.post(make_order(products))

    assert reply.status == 201
    assert [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in salesforce.requests()] == [("POST", "composite")]


def test_the_same_order_again_answers_200_with_the_same_ids_and_calls_nothing(salesforce, products, caller):
    order = make_order(products)
    first = caller.post(order)
    salesforce.clear_requests()

    again = caller.post(order)
    # the same order formatted differently (key order, number formats) is the same order
    reformatted = dict(reversed(list(order.items())))
    reformatted["lines"] = [{**line, "unit_price": str(line["unit_price"]) + ("0" if "." in str(line["unit_price"])
                                                                             else ".00")}
                            for line in order["lines"]]
    third = caller.post(reformatted)

    assert first.status == 201
    assert (again.status, again.body["status"]) == (200, "unchanged")
    assert again.body["salesforce"] == first.body["salesforce"]
    assert (third.status, third.body["salesforce"]) == (200, first.body["salesforce"])
    assert salesforce.requests() == []
    assert len(sf_order(order["order_number"])) == 1
    assert len(sf_lines(order["order_number"])) == 3
    assert len(sf_accounts(order["customer"]["erp_customer_id"])) == 1


def test_a_changed_order_updates_the_order_and_replaces_its_lines(salesforce, products, caller):
    order = make_order(products)
    first = caller.post(order).body["salesforce"]
    changed = {**order, "shipping_address": {"city": "Hamburg"}, "description": "leave at the door",
               "lines": [{"product_code": products["gizmo"], "quantity": 7, "unit_price": "3.50"},
                         {"product_code": products["widget"], "quantity": 1, "unit_price": "18"}]}

    reply = caller.post(changed)

    assert (reply.status, reply.body["status"]) == (200, "updated")
    ids = reply.body["salesforce"]
    assert (ids["account_id"], ids["order_id"]) == (first["account_id"], first["order_id"])
    assert not set(ids["order_item_ids"]) & set(first["order_item_ids"])
    [written] = sf_order(order["order_number"])
    assert (written["ShippingCity"], written["Description"]) == ("Hamburg", "leave at the door")
    lines = sf_lines(order["order_number"])
    assert [(line["PricebookEntryId"], line["Quantity"], line["UnitPrice"]) for line in lines] == [
        (products.entries[products["gizmo"]], 7, 3.5), (products.entries[products["widget"]], 1, 18)]
    # and the changed order replayed is a replay of the new version
    assert caller.post(changed).body == {**reply.body, "status": "unchanged"}


def test_a_lost_ledger_record_never_duplicates_the_order_or_its_lines(salesforce, products, caller, stack):
    order = make_order(products)
    first = caller.post(order).body["salesforce"]
    stack.table.delete_item(Key={"id": f"order#{order['order_number'].lower()}"})

    reply = caller.post(order)

    # the insert finds the order number taken, rolls back, re-reads the lines and replaces them
    assert (reply.status, reply.body["status"]) == (200, "updated")
    assert reply.body["salesforce"]["order_id"] == first["order_id"]
    assert len(sf_order(order["order_number"])) == 1
    assert len(sf_lines(order["order_number"])) == 3


def test_an_older_version_never_overwrites_a_newer_one(salesforce, products, caller):
    order = make_order(products, updated_at="2025-03-14T10:00:00+01:00")
    assert caller.post(order).status == 201
    older = {**order, "updated_at": "2025-03-14T08:59:59Z", "lines": order["lines"][:1]}

    reply = caller.post(older)

    assert reply.status == 409
    assert reply.body["error"] == "stale_order"
    assert len(sf_lines(order["order_number"])) == 3


# -- client errors -----------------------------------------------------------------------------------


def test_an_invalid_order_lists_every_invalid_field_and_touches_nothing(salesforce, products, caller):
    order = make_order(products, order_date="14/03/2025", surprise=1)
    order["customer"] = {"name": ""}
    order["lines"][0]["quantity"] = 0
    order["lines"][1]["unit_price"] = "12.345"
    del order["lines"][2]["product_code"]

    reply = caller.post(order)

    assert reply.status == 400
    assert reply.body["error"] == "invalid_order"
    fields = {error["field"] for error in reply.body["fields"]}
    assert fields == {"order_date", "surprise", "customer.erp_customer_id", "customer.name", "lines[0].quantity",
                      "lines[1].unit_price", "lines[2].product_code"}
    assert "Traceback" not in reply.raw
    assert api_calls(salesforce) == []


@pytest.mark.parametrize(("body", "field"), [
    ("{not json", "body"),
    ("[]", "body"),
    ("", "body"),
    ('{"order_number": "A B", "order_date": "2025-01-01", "customer": {"erp_customer_id": "C", "name": "n"}, '
     '"lines": []}', "order_number"),
])
def test_malformed_bodies_are_a_400_not_a_500(salesforce, caller, body, field):
    reply = caller.post(body)

    assert reply.status == 400
    assert field in {error["field"] for error in reply.body["fields"]}
    assert api_calls(salesforce) == []


def test_unknown_and_inactive_products_are_named_in_a_422_and_nothing_is_written(salesforce, products, caller):
    order = make_order(products)
    order["lines"].append({"product_code": "NO-SUCH-SKU", "quantity": 1, "unit_price": 1})
    order["lines"].append({"product_code": products["retired"], "quantity": 1, "unit_price": 1})

    reply = caller.post(order)

    assert reply.status == 422
    assert reply.body["error"] == "unknown_products"
    assert sorted(reply.body["products"]) == sorted(["NO-SUCH-SKU", products["retired"]])
    assert composite_calls(salesforce) == []
    assert sf_order(order["order_number"]) == []


def test_a_salesforce_validation_error_is_a_422_with_its_codes_and_leaves_nothing_behind(salesforce, products,
                                                                                         caller):
    assert caller.post(make_order(products)).status == 201  # the price book entries are now cached
    get_access().request("DELETE", f"sobjects/PricebookEntry/{products.entries[products['gadget']]}")
    order = make_order(products)

    reply = caller.post(order)

    assert reply.status == 422
    assert reply.body["error"] == "salesforce_rejected"
    [error] = reply.body["salesforce_errors"]
    assert error["where"] == "lines[1]"
    assert error["errorCode"] in {"INVALID_CROSS_REFERENCE_KEY", "ENTITY_IS_DELETED", "INVALID_FIELD"}
    assert error["fields"] == ["PricebookEntryId"]
    # all-or-none: neither the new customer's Account nor the Order survived the failed line
    assert sf_accounts(order["customer"]["erp_customer_id"]) == []
    assert sf_order(order["order_number"]) == []


# -- Salesforce faults -------------------------------------------------------------------------------


def test_salesforce_unavailable_is_a_503_with_retry_after_and_no_partial_order(salesforce, products, caller,
                                                                               lambda_context):
    order = make_order(products)
    salesforce.inject("503", count=20, path="/composite$")
    caller.context_factory = lambda: type(lambda_context)(timeout_ms=7_500)  # retries end 2.5 s in

    reply = caller.post(order)

    assert reply.status == 503
    assert reply.body["error"] == "salesforce_unavailable"
    assert reply.headers["Retry-After"] == "30"
    assert len(composite_calls(salesforce)) > 1  # the layer retried a refused-before-processing 503
    assert sf_order(order["order_number"]) == []
    salesforce.clear_faults()
    caller.context_factory = type(lambda_context)
    assert caller.post(order).status == 201


@pytest.mark.parametrize("setup", ["request_limit", "allocation_guard"])
def test_out_of_api_allocation_is_a_503_with_a_longer_retry_after(salesforce, products, caller, setup):
    order = make_order(products)
    if setup == "request_limit":
        salesforce.inject("REQUEST_LIMIT_EXCEEDED", count=1, path="/composite$")
    else:
        salesforce.set_api_usage(950_000, 1_000_000)  # above the API's 90 % guard
        reset_access_cache()  # a fresh container: the guard asks /limits before writing

    reply = caller.post(order)

    assert reply.status == 503
    assert reply.headers["Retry-After"] == "900"
    assert sf_order(order["order_number"]) == []
    if setup == "allocation_guard":
        assert composite_calls(salesforce) == []


def test_a_write_whose_answer_was_lost_is_safely_sent_again(salesforce, products, caller, lambda_context):
    order = make_order(products)
    assert caller.post(make_order(products)).status == 201  # warm: the price book is cached
    # the composite is applied after 2 s but the invocation's budget (6.5 s - 5 s margin) gives up before
    salesforce.inject("delay", count=1, path="/composite$", delay_seconds=2)
    caller.context_factory = lambda: type(lambda_context)(timeout_ms=6_500)

    lost = caller.post(order)

    assert lost.status == 503  # the outcome is unknown: a POST is never replayed by the layer
    deadline = time.monotonic() + 10
    while not sf_lines(order["order_number"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    caller.context_factory = type(lambda_context)
    retried = caller.post(order)
    assert retried.status == 200
    assert len(sf_order(order["order_number"])) == 1
    assert len(sf_lines(order["order_number"])) == 3


def test_the_ledger_being_unavailable_does_not_fail_orders(salesforce, products, caller, monkeypatch):
    monkeypatch.setenv("STATE_TABLE_NAME", "no-such-table")
    from order_intake import api

    api.reset()
    order = make_order(products)

    assert caller.post(order).status == 201
    again = caller.post(order)  # without a ledger the replay costs calls but still creates nothing
    assert again.status == 200
    assert len(sf_lines(order["order_number"])) == 3


@pytest.mark.parametrize("content_type", ["text/csv", "text/plain", "text/plain; charset=utf-8",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_a_signed_body_that_is_not_json_is_a_415_and_touches_nothing(salesforce, products, caller, stack,
                                                                     content_type):
    order = make_order(products)
    form = "&".join(f"{key}={value}" for key, value in order.items() if isinstance(value, str))
    body = (form if "form" in content_type else json.dumps(order)).encode()
    for path in ("/orders", "/orders/async"):
        headers = {"Content-Type": content_type, **signed_headers(caller.key, body)}
        reply = caller.post(body, path, headers=headers)
        assert (reply.status, reply.body["error"]) == (415, "unsupported_media_type"), path
    assert api_calls(salesforce) == []
    assert stack.count() == 0


def test_an_unknown_route_is_a_json_404(caller):
    reply = caller.post({}, "/orders/elsewhere")
    assert (reply.status, reply.body["error"]) == (404, "not_found")
