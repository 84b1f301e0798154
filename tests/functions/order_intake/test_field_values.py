"""Values the order contract refuses before anything reaches Salesforce or the queue: numbers that are not
what docs/api/orders-openapi.yaml allows (a JSON number, or a plain decimal string), and control characters
in text that lands in Salesforce fields (Account.Name, addresses, descriptions)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from salesforce_access import get_access, soql

from .conftest import api_calls, make_order


def with_value(order: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`order` with the value at a dotted path ("customer.name", "lines.0.quantity") replaced."""
    *parents, last = path.split(".")
    node: Any = order
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return order


# -- numbers -----------------------------------------------------------------------------------------------

NOT_NUMBERS = [True, False, " 5 ", "1e2", "+5", "5.", ".5", "5_0", "\u0665", "0x10", "5,00", [5], {"value": 5}]


@pytest.mark.parametrize("field", ["quantity", "unit_price"])
def test_a_number_must_be_a_json_number_or_a_plain_decimal_string(salesforce, products, caller, stack, field):
    for value in NOT_NUMBERS:  # one set-up for every value: the fixtures (moto, products) cost more than a request
        order = make_order(products)
        order["lines"][1][field] = value
        for path, body in (("/orders", order), ("/orders/async", {"orders": [order]})):
            reply = caller.post(body, path)
            assert (reply.status, reply.body["error"]) == (400, "invalid_order"), (value, path, reply.body)
            expected = f"lines[1].{field}" if path == "/orders" else f"orders[0].lines[1].{field}"
            assert expected in {error["field"] for error in reply.body["fields"]}, (value, reply.body)
    assert api_calls(salesforce) == []
    assert stack.count() == 0


@pytest.mark.parametrize(("quantity", "unit_price", "stored"), [(2, 19.9, (2.0, 19.9)), ("2", "19.90", (2.0, 19.9)),
                                                                  ("0.5", "1000", (0.5, 1000.0)), (1.25, 0, (1.25, 0))])
def test_json_numbers_and_plain_decimal_strings_are_accepted(salesforce, products, caller, quantity, unit_price,
                                                             stored):
    order = make_order(products)
    order["lines"] = [{"product_code": products["widget"], "quantity": quantity, "unit_price": unit_price}]
    assert caller.post(order).status == 201
    [line] = get_access().query(soql("SELECT Quantity, UnitPrice FROM OrderItem "
                                     "WHERE Order.Ecommerce_Order_Number__c = {n}", n=order["order_number"]))
    assert (float(line["Quantity"]), float(line["UnitPrice"])) == stored


# -- control characters ------------------------------------------------------------------------------------

SINGLE_LINE = ["customer.name", "customer.phone", "billing_address.city", "billing_address.postal_code",
               "shipping_address.country", "lines.0.description"]  # product codes are only looked up: 422
MULTI_LINE = ["billing_address.street", "shipping_address.street", "description"]
CONTROLS = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f"]


def api_field(path: str) -> str:
    return path.replace("lines.0.", "lines[0].")


CONTROL_CASES = ([(path, "\x00") for path in SINGLE_LINE + MULTI_LINE]
                 + [(path, control) for path in ("customer.name", "billing_address.street")
                    for control in CONTROLS[1:]])
LINE_BREAK_CASES = [(path, "\n") for path in SINGLE_LINE] + [("customer.name", "\r"), ("customer.name", "\t")]


def test_a_control_character_never_reaches_salesforce(salesforce, products, caller):
    for path, control in CONTROL_CASES:
        order = with_value(make_order(products, description="Deliver to the back door"), path, f"Acme{control}Retail")
        reply = caller.post(order)
        case = (path, f"U+{ord(control):04X}", reply.body)
        assert (reply.status, reply.body["error"]) == (400, "invalid_order"), case
        fields = {error["field"]: error["message"] for error in reply.body["fields"]}
        assert "control character" in fields.get(api_field(path), ""), case
        assert "\\u00" not in reply.raw, case  # the value is never echoed
    assert api_calls(salesforce) == []


def test_a_single_line_field_refuses_line_breaks_and_tabs_inside(salesforce, products, caller):
    for path, breaking in LINE_BREAK_CASES:
        reply = caller.post(with_value(make_order(products), path, f"Acme{breaking}Retail"))
        assert reply.status == 400, (path, breaking, reply.body)
        assert api_field(path) in {error["field"] for error in reply.body["fields"]}, (path, breaking, reply.body)
    assert api_calls(salesforce) == []


def test_multi_line_fields_keep_their_line_breaks_and_tabs(salesforce, products, caller):
    order = make_order(products, description="Ring twice.\r\nThen:\tleave it at the door.")
    order["billing_address"]["street"] = "Hauptstr. 1\nHinterhaus"
    assert caller.post(order).status == 201
    [stored] = get_access().query(soql("SELECT Description, BillingStreet FROM Order "
                                       "WHERE Ecommerce_Order_Number__c = {n}", n=order["order_number"]))
    assert stored["Description"] == "Ring twice.\r\nThen:\tleave it at the door."
    assert stored["BillingStreet"] == "Hauptstr. 1\nHinterhaus"


def test_a_control_character_in_an_async_batch_queues_nothing(salesforce, products, caller, stack):
    order = make_order(products)
    order["customer"]["name"] = "Acme\x00Retail"
    reply = caller.post(json.dumps({"orders": [make_order(products), order]}), "/orders/async")
    assert reply.status == 400
    assert "orders[1].customer.name" in {error["field"] for error in reply.body["fields"]}
    assert stack.count() == 0
