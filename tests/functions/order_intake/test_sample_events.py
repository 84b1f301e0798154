"""The samples in events/orders-*.json: accepted with the documented demo key once their fixed timestamp is
allowed (and refused otherwise), and the SQS batch is a batch the worker writes."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from order_intake import api, worker

from salesforce_access import get_access, soql

EVENTS = Path(__file__).resolve().parents[3] / "events"
DEMO_KEY = "local-demo-orders-signing-key-0123456789"  # documented in docs/remote-call-in.md


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def demo_key(stack, monkeypatch):
    arn = boto3.client("secretsmanager").create_secret(Name="demo", SecretString=DEMO_KEY)["ARN"]
    monkeypatch.setenv("ORDER_SIGNING_SECRET_ARN", arn)
    monkeypatch.setenv("SIGNATURE_TOLERANCE_SECONDS", str(10**10))  # the samples' timestamp is fixed
    api.reset()


@pytest.fixture
def sample_products(salesforce):
    """SKU-1001 and SKU-1002 in the standard price book (once per emulator session)."""
    access = get_access()
    pricebook = next(access.query("SELECT Id FROM Pricebook2 WHERE IsStandard = true"))["Id"]
    for code in ("SKU-1001", "SKU-1002"):
        if not list(access.query(soql("SELECT Id FROM PricebookEntry WHERE Product2.ProductCode = {c}", c=code))):
            product = access.request("POST", "sobjects/Product2", json={"Name": code, "ProductCode": code})
            access.request("POST", "sobjects/PricebookEntry", json={
                "Pricebook2Id": pricebook, "Product2Id": product["id"], "UnitPrice": 10, "IsActive": True})


@pytest.mark.usefixtures("demo_key", "sample_products")
def test_the_signed_samples_are_accepted_with_the_demo_key(stack, lambda_context):
    reply = api.handler(load("orders-post.json"), lambda_context)
    assert reply["statusCode"] in (200, 201)
    assert json.loads(reply["body"])["order_number"] == "WEB-2026-000123"
    queued = api.handler(load("orders-post-async.json"), lambda_context)
    assert queued["statusCode"] == 202
    assert json.loads(queued["body"])["accepted"] == 2


@pytest.mark.parametrize(("name", "reason"), [("orders-post.json", "outside the 300 s window"),
                                              ("orders-post-async.json", "outside the 300 s window"),
                                              ("orders-post-unsigned.json", "missing header")])
def test_with_the_normal_window_or_no_signature_the_samples_are_refused(stack, lambda_context, name, reason):
    reply = api.handler(load(name), lambda_context)
    assert reply["statusCode"] == 401
    assert reason in json.loads(reply["body"])["message"]


@pytest.mark.usefixtures("sample_products")
def test_the_sqs_sample_is_written_by_the_worker(stack, lambda_context):
    assert worker.handler(load("orders-sqs-batch.json"), lambda_context) == {"batchItemFailures": []}
    rows = list(get_access().query("SELECT Id FROM Order WHERE Ecommerce_Order_Number__c IN "
                                   "('WEB-2026-000123', 'WEB-2026-000124')"))
    assert len(rows) == 2
