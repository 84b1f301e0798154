"""The sample events in events/ and the real Outbound Message endpoint feed the consumer: every entry point
bills the contract, and together they bill it once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from outbound_message import handler as outbound_endpoint

from ..outbound_message.conftest import api_event, soap_message
from .conftest import billing_posts

ROOT = Path(__file__).resolve().parents[3]
SAMPLE_CONTRACT = "8005e000001AbCdAAK"
SQS_SAMPLES = ["contract-signed-sqs-api.json", "contract-signed-sqs-event-relay.json",
               "contract-signed-sqs-outbound-message.json"]


def sample(name: str, contract_id: str, account_id: str) -> str:
    """A sample event with the ids of records that exist in the emulator."""
    return (ROOT / "events" / name).read_text().replace(SAMPLE_CONTRACT, contract_id) \
        .replace("0015e00000ZkM3hAAF", account_id)


@pytest.mark.parametrize("name", SQS_SAMPLES)
def test_each_sample_sqs_event_bills_its_contract(esm, queues, billing, org, lambda_context, name):
    contract_id, account_id = org.new_contract()
    event = json.loads(sample(name, contract_id, account_id))
    [record] = event["Records"]
    queues.send(record["body"])  # through the real queue, body byte for byte as the entry point produces it

    assert esm.poll().failed == []
    assert org.get("Contract", contract_id)["Billing_Status__c"] == "Active"


def test_the_api_body_is_consumed_verbatim_with_its_formatting(esm, queues, billing, org):
    # API Gateway's SQS integration forwards $input.body untouched: pretty-printed JSON with newlines.
    contract_id, account_id = org.new_contract()
    raw = sample("contract-signed-request.json", contract_id, account_id)
    assert "\n" in raw
    queues.send(raw)
    assert esm.poll().failed == []
    assert len(billing.accounts(contract_id=contract_id)) == 1


@pytest.fixture
def outbound(queues, monkeypatch):
    """The Outbound Message endpoint writing to the same queue (and state table) as the consumer reads."""
    monkeypatch.setenv("CONTRACTS_QUEUE_URL", queues.url)
    monkeypatch.setenv("STATE_TABLE_NAME", "state")
    monkeypatch.setenv("SALESFORCE_ORG_ID", "00D5e000000KQ2eEAG")
    outbound_endpoint.queue.cache_clear()
    yield lambda body, context: outbound_endpoint.handler(api_event(body), context)
    outbound_endpoint.queue.cache_clear()


def test_outbound_message_then_platform_event_then_retried_outbound_message_bill_once(
        esm, queues, billing, org, outbound, lambda_context):
    contract_id, account_id = org.new_contract()
    fields = {"Id": contract_id, "AccountId": account_id, "CustomerSignedDate": "2025-03-01"}
    soap = soap_message([("04l5e00000Gx7QzAAJ", fields)])

    ack = outbound(soap, lambda_context)
    assert ack["statusCode"] == 200
    assert queues.count() == 1  # acked with the notification already queued
    assert esm.poll().failed == []

    # The same signing also arrives as a platform event through Event Relay, and Salesforce retries the
    # Outbound Message (it never saw our Ack, say): one more queue message, one duplicate dropped at the door.
    queues.send(sample("contract-signed-event-relay.json", contract_id, account_id))
    assert outbound(soap, lambda_context)["statusCode"] == 200
    assert queues.count() == 1
    assert esm.poll().failed == []

    assert len(billing_posts(billing)) == 1
    [account] = billing.accounts(contract_id=contract_id)
    contract = org.get("Contract", contract_id)
    assert contract["Billing_Account_Number__c"] == account["account_number"]
    assert contract["Billing_Status__c"] == "Active"
