"""SOQL injection attempts wherever outside input reaches a query, against the Salesforce emulator.

Where outside input meets SOQL (grep for ``soql(`` / ``query(`` in functions/ and layers/):

- order intake: the order's product codes (free text up to 255 characters) in the PricebookEntry look-up, and
  order numbers in the existing-lines query (a restricted alphabet, refused before any query otherwise);
- shipment status: tracking numbers in the Shipment__c look-up (restricted alphabet at the webhook and the
  publisher; the adapter must still quote whatever it is handed);
- customer sync: ERP customer ids in the match query (tests/bad_input/test_events_customer_sync.py) and the
  backfill ``since`` (a parsed datetime, test_events_customer_sync.py::BAD_STARTS);
- the layer's ``soql()``/``quote_soql``/``quote_like`` that all of them use.

Each attempt must be a literal: it matches the record holding that exact text and nothing else, no other
record is returned or modified, and the statement on the wire carries it quoted and escaped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from order_intake import api
from shipment_status.salesforce import SalesforceShipments

from edge_kit.signatures import signed_headers
from salesforce_access import get_access, quote_like, soql

from .conftest import FEW, QueryLog, assert_clean_error, proxy_event, salesforce_writes

PAYLOADS = [
    "x' OR Name LIKE '%",
    "' OR ProductCode != '",
    "\\' OR IsActive = true OR ProductCode = \\'",
    "\\",
    "%",
    "_",
    "'",
    "A\nOR ProductCode != null",
    "A\r\nB\tC",
    "') OR (ProductCode != '",
    "x' LIMIT 1 --",
    "\u2019 OR \u2018x\u2019 = \u2018x",
    "\x00'",
    "P" * 255,
]
SIGNING_KEY = "whsec-soql-3b8e1f0a7c2d9e46"


@pytest.fixture
def orders(salesforce: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> Iterator[Any]:
    boto3.client("dynamodb").create_table(
        TableName="state", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    secret_arn = boto3.client("secretsmanager").create_secret(
        Name="orders/signing", SecretString=json.dumps({"current": SIGNING_KEY}))["ARN"]
    monkeypatch.setenv("STATE_TABLE_NAME", "state")
    monkeypatch.setenv("ORDER_SIGNING_SECRET_ARN", secret_arn)
    api.reset()

    def post(order: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(order).encode()
        headers = {"Content-Type": "application/json", **signed_headers(SIGNING_KEY, body)}
        return api.handler(proxy_event("POST", "/orders", headers=headers, body=body), type(lambda_context)())

    yield post
    api.reset()


def add_product(code: str) -> str:
    """An active product with this ProductCode in the standard price book; the PricebookEntry id."""
    access = get_access()
    pricebook = next(access.query("SELECT Id FROM Pricebook2 WHERE IsStandard = true"))["Id"]
    product = access.request("POST", "sobjects/Product2", json={"Name": "soql", "ProductCode": code, "IsActive": True})
    return access.request("POST", "sobjects/PricebookEntry", json={
        "Pricebook2Id": pricebook, "Product2Id": product["id"], "UnitPrice": 3, "IsActive": True})["id"]


def order(*codes: str) -> dict[str, Any]:
    return {"order_number": f"SOQL-{uuid.uuid4().hex[:10]}", "order_date": "2025-03-14",
            "customer": {"erp_customer_id": f"C-{uuid.uuid4().hex[:8]}", "name": "Injector Ltd"},
            "lines": [{"product_code": code, "quantity": 1, "unit_price": 3} for code in codes]}


def test_product_codes_that_match_nothing_are_refused_by_name(orders: Any, salesforce: Any,
                                                             soql_log: QueryLog) -> None:
    add_product(f"DECOY-{uuid.uuid4().hex[:6]}")  # an active product every injection would like to reach
    salesforce.clear_requests()
    status, answer = assert_clean_error(orders(order(*PAYLOADS)), code_keys=("error",))
    assert status == 422, answer
    assert answer["error"] == "unknown_products"
    assert sorted(answer["products"]) == sorted(p.strip() for p in PAYLOADS), "each named literally, none resolved"
    assert salesforce_writes(salesforce) == [], "nothing written"
    [statement] = [s for s in soql_log.statements if "FROM PricebookEntry" in s]
    assert "'x\\' OR Name LIKE \\'%'" in statement
    assert "\n" not in statement
    assert "\r" not in statement


def test_a_product_code_that_looks_like_an_injection_resolves_to_itself(orders: Any, salesforce: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    literal = f"x' OR ProductCode LIKE '%{tag}"
    entry = add_product(literal)
    add_product(f"Y{tag}")  # what the injection, if spliced, would also match
    status, answer = assert_clean_error(orders(order(literal)), code_keys=("error",))
    assert status == 201, answer
    [item_id] = answer["salesforce"]["order_item_ids"]
    item = get_access().request("GET", f"sobjects/OrderItem/{item_id}")
    assert item["PricebookEntryId"] == entry


def test_order_numbers_that_are_not_business_keys_never_reach_a_query(orders: Any, salesforce: Any) -> None:
    for number in ["x' OR '1'='1", "A%", "A_B\nC", "' OR Id != null OR Ecommerce_Order_Number__c = '"]:
        salesforce.clear_requests()
        status, answer = assert_clean_error(orders({**order("ANY"), "order_number": number}), code_keys=("error",))
        assert status == 400, (number, answer)
        assert [f["field"] for f in answer["fields"]] == ["order_number"]
        assert salesforce.requests() == []


def test_tracking_numbers_are_quoted_by_the_shipment_adapter(salesforce: Any, soql_log: QueryLog) -> None:
    """The webhook and the publisher refuse these already (test_events_shipment_status.py); the adapter still
    quotes whatever it is handed, so a looser model tomorrow would not open a hole."""
    access = get_access()
    tag = uuid.uuid4().hex[:8].upper()
    access.collections.upsert("Shipment__c", "Tracking_Number__c", [
        {"Name": f"1Z{tag}", "Tracking_Number__c": f"1Z{tag}", "Status__c": "In Transit"}])
    soql_log.clear()
    found = SalesforceShipments(access).current([*PAYLOADS, f"x' OR Tracking_Number__c LIKE '%{tag}"])
    assert found == {}, "neither the shipment nor any other is returned"
    [statement] = soql_log.statements
    assert "'x\\' OR Name LIKE \\'%'" in statement
    assert f"'x\\' OR Tracking_Number__c LIKE \\'%{tag}'" in statement


# -- the layer's quoting, by property ------------------------------------------------------------------

tricky_text = st.text(alphabet=st.one_of(st.sampled_from(list("'\"\\%_\n\r\t\b\f ()=!<>*;-")),
                                         st.characters(exclude_categories=("Cs", "Cc"))), min_size=1, max_size=40)


@given(name=tricky_text)
@FEW
def test_any_text_as_a_literal_matches_exactly_itself(salesforce: Any, name: str) -> None:
    access = get_access()
    tag = uuid.uuid4().hex[:10]
    created = access.request("POST", "sobjects/Account", json={"Name": name + tag})["id"]
    access.request("POST", "sobjects/Account", json={"Name": "decoy " + tag})
    rows = list(access.query(soql("SELECT Id, Name FROM Account WHERE Name = {n}", n=name + tag)))
    assert [row["Id"] for row in rows] == [created]
    like = list(access.query(f"SELECT Id FROM Account WHERE Name LIKE {quote_like(name + tag)}"))  # noqa: S608
    assert [row["Id"] for row in like] == [created], "LIKE wildcards in the value are literals too"
