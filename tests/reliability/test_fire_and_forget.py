"""Pattern 2, Fire and Forget: every fault of the matrix against the billing consumer (SQS -> billing ->
Salesforce callback) and the Outbound Message endpoint. Each test checks that no contract is lost (each ends with
its billing account and an Active Contract, or waits on the queue / in the DLQ), that none is billed twice (one
account per contract in the billing stand-in) and that the fault shows in a metric, a log line or the DLQ."""

from __future__ import annotations

from typing import Any

import pytest
from billing_consumer.salesforce import SalesforceContracts
from outbound_message import handler as outbound_endpoint

from salesforce_emulator.connection import fetch_token
from tests.functions.billing_consumer import conftest as consumer_fixtures
from tests.functions.billing_consumer.conftest import api_body, billing_posts, outbound_message, relay_event
from tests.functions.outbound_message.conftest import api_event, soap_message

from .conftest import CountdownContext, before_call

billing_server = consumer_fixtures.billing_server
billing = consumer_fixtures.billing
queues = consumer_fixtures.queues
state_table = consumer_fixtures.state_table
consumer_env = consumer_fixtures.consumer_env
esm = consumer_fixtures.esm
org = consumer_fixtures.org


def billed_once(billing: Any, org: Any, contracts: list[tuple[str, str]]) -> None:
    """Each contract has exactly one billing account, and its Contract in Salesforce shows it, Active."""
    for contract_id, _ in contracts:
        [account] = billing.accounts(contract_id=contract_id)
        contract = org.get("Contract", contract_id)
        assert (contract["Billing_Account_Number__c"], contract["Billing_Status__c"]) == \
            (account["account_number"], "Active")


def handed_back(observed: Any, reason: str) -> list[dict[str, Any]]:
    return [r for r in observed.logs("transient failure: message will be retried") if r["reason"] == reason]


def send_contracts(queues: Any, org: Any, count: int) -> list[tuple[str, str]]:
    contracts = [org.new_contract() for _ in range(count)]
    for contract_id, account_id in contracts:
        queues.send(api_body(contract_id, account_id))
    return contracts


# -- Salesforce faults on the callback -------------------------------------------------------------------------


def test_session_expiry_in_the_middle_of_a_batch(esm, queues, billing, org, salesforce, observed, monkeypatch):
    contracts = send_contracts(queues, org, 3)
    before_call(monkeypatch, SalesforceContracts, "record_billing", 2, salesforce.expire_tokens)

    delivery = esm.poll()

    assert delivery.failed == []
    org.session.headers["Authorization"] = f"Bearer {fetch_token(org.info, org.session)}"  # the admin's expired too
    billed_once(billing, org, contracts)
    assert len(billing_posts(billing)) == 3
    assert observed.metrics()["SalesforceReauthentications"] == 1
    assert observed.logs("Salesforce session expired; re-authenticating once and replaying")


@pytest.mark.parametrize("kind", ["503", "UNABLE_TO_LOCK_ROW"])
def test_a_passing_salesforce_fault_is_retried_inside_the_invocation(esm, queues, billing, org, salesforce,
                                                                     fast_layer, observed, kind):
    contracts = send_contracts(queues, org, 2)
    salesforce.inject(kind, count=2, method="PATCH", path=contracts[1][0])

    assert esm.poll().failed == []

    billed_once(billing, org, contracts)
    assert observed.metrics()["SalesforceRetries"] == 2
    retried = observed.logs("Transient Salesforce failure; retrying")
    assert {r["error"] for r in retried} == {"ServiceUnavailable" if kind == "503" else "RowLocked"}


@pytest.mark.parametrize("kind", ["503", "UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED"])
def test_a_lasting_salesforce_fault_hands_the_message_back_and_the_redelivery_bills_nothing_twice(
        esm, queues, billing, org, salesforce, fast_layer, observed, kind):
    [contract] = send_contracts(queues, org, 1)
    salesforce.inject(kind, count=100, method="PATCH")

    first = esm.poll()

    assert len(first.failed) == 1
    assert queues.count() == 1  # kept on the queue, not lost
    assert org.get("Contract", contract[0])["Billing_Status__c"] == "Pending"
    assert handed_back(observed, "salesforce_unavailable")
    salesforce.clear_faults()

    assert esm.poll().failed == []

    billed_once(billing, org, [contract])
    assert len(billing_posts(billing)) == 1  # the retry took the account from the idempotency record
    metrics = observed.metrics()
    assert metrics["TransientFailures"] == 1
    assert metrics["DuplicateDeliveries"] == 1
    assert metrics["ContractsBilled"] == 1


# -- slow answers and dropped connections ----------------------------------------------------------------------


def test_billing_slower_than_its_read_timeout(esm, queues, billing, org, observed, monkeypatch):
    monkeypatch.setenv("BILLING_READ_TIMEOUT", "0.3")
    consumer_fixtures.application.reset()
    [contract] = send_contracts(queues, org, 1)
    billing.inject("timeout", count=2, delay_seconds=1)  # the in-process retry times out too

    assert len(esm.poll().failed) == 1
    assert billing.accounts() == []
    assert handed_back(observed, "billing_unavailable")
    assert esm.poll().failed == []

    billed_once(billing, org, [contract])
    assert observed.metrics()["TransientFailures"] == 1


def test_salesforce_slower_than_the_layer_timeout(esm, queues, billing, org, salesforce, short_timeouts, observed):
    [contract] = send_contracts(queues, org, 1)
    salesforce.inject("delay", count=1, method="PATCH", delay_seconds=1.5)  # read timeout 1 s

    assert esm.poll().failed == []

    billed_once(billing, org, [contract])
    assert observed.metrics()["SalesforceRetries"] == 1  # a PATCH of the same values is safe to send again
    assert [r["error"] for r in observed.logs("Transient Salesforce failure; retrying")] == ["ConnectionFailed"]


def test_billing_dropping_the_connection_after_opening_the_account(esm, queues, billing, org, observed):
    [contract] = send_contracts(queues, org, 1)
    billing.inject("lost_response", count=2)  # the account is opened, the answer never arrives (twice)

    assert len(esm.poll().failed) == 1
    assert handed_back(observed, "billing_unavailable")
    assert esm.poll().failed == []

    billed_once(billing, org, [contract])  # the Idempotency-Key made billing replay the account it opened
    assert observed.metrics()["TransientFailures"] == 1


def test_salesforce_dropping_the_connection(esm, queues, billing, org, salesforce, fast_layer, observed):
    contracts = send_contracts(queues, org, 2)
    salesforce.inject("drop", count=1, method="PATCH")

    assert esm.poll().failed == []

    billed_once(billing, org, contracts)
    assert observed.metrics()["SalesforceRetries"] == 1


# -- billing down, out of time ---------------------------------------------------------------------------------


def test_billing_down_hands_the_batch_back_and_bills_each_contract_once_when_it_returns(esm, queues, billing, org,
                                                                                        observed):
    contracts = send_contracts(queues, org, 3)
    billing.stop()  # connections refused

    down = esm.poll()

    assert sorted(down.failed) == sorted(down.received)
    assert queues.count() == 3
    assert len(handed_back(observed, "billing_unavailable")) == 3
    assert observed.metrics()["TransientFailures"] == 3
    billing.start()

    assert esm.poll().failed == []

    billed_once(billing, org, contracts)
    assert queues.count() == 0
    assert queues.dead_letters() == []


def test_running_out_of_time_in_the_middle_of_a_batch(esm, queues, billing, org, observed):
    contracts = send_contracts(queues, org, 3)
    billing.set_latency(0.6)
    # The consumer needs 13 s for one more contract (two billing attempts of 1 + 2 s timeouts, the backoff, the
    # callback): time for the first contract only.
    context = CountdownContext(13_000 + 300)

    first = esm.poll(context=context)

    assert len(first.failed) == 2
    assert len(billing_posts(billing)) == 1  # the other two never reached billing
    assert len(handed_back(observed, "out_of_time")) == 2
    billing.set_latency(0)

    assert esm.poll().failed == []

    billed_once(billing, org, contracts)
    assert len(billing_posts(billing)) == 3
    metrics = observed.metrics()
    assert (metrics["ContractsBilled"], metrics["TransientFailures"]) == (3, 2)


# -- redelivery and duplicates ---------------------------------------------------------------------------------


def test_an_sqs_redelivery_of_a_billed_message(esm, queues, billing, org, observed):
    [contract] = send_contracts(queues, org, 1)
    messages = queues.receive()

    esm.poll(messages=messages)
    esm.poll(messages=messages)  # the visibility timeout expired before the delete: the same message again

    billed_once(billing, org, [contract])
    assert len(billing_posts(billing)) == 1
    assert observed.metrics()["DuplicateDeliveries"] == 1


def test_a_message_failing_every_delivery_ends_in_the_dlq(esm, queues, billing, org, observed):
    send_contracts(queues, org, 1)
    billing.stop()

    for _ in range(consumer_fixtures.MAX_RECEIVE_COUNT):
        assert len(esm.poll().failed) == 1

    assert queues.receive() == []  # the redrive policy moved it
    assert len(queues.dead_letters()) == 1
    assert observed.metrics()["TransientFailures"] == consumer_fixtures.MAX_RECEIVE_COUNT


@pytest.fixture
def outbound(queues, monkeypatch):
    """The Outbound Message endpoint writing to the queue (and state table) the consumer reads."""
    monkeypatch.setenv("CONTRACTS_QUEUE_URL", queues.url)
    monkeypatch.setenv("STATE_TABLE_NAME", "state")
    monkeypatch.setenv("SALESFORCE_ORG_ID", "00D5e000000KQ2eEAG")
    outbound_endpoint.queue.cache_clear()
    yield lambda body, context: outbound_endpoint.handler(api_event(body), context)
    outbound_endpoint.queue.cache_clear()


def test_the_same_signing_delivered_twice_through_every_entry_point(esm, queues, billing, org, outbound,
                                                                    lambda_context, observed):
    contract_id, account_id = org.new_contract()
    soap = soap_message([("04l5e00000Gx7QzAAJ", {"Id": contract_id, "AccountId": account_id,
                                                 "CustomerSignedDate": "2025-03-01"})])

    assert outbound(soap, lambda_context)["statusCode"] == 200
    assert outbound(soap, lambda_context)["statusCode"] == 200  # Salesforce retried: it never saw our Ack
    queues.send(relay_event(contract_id, account_id))
    queues.send(api_body(contract_id, account_id))
    queues.send(outbound_message(contract_id, account_id, notification_id="04l5e00000Gx7R0AAJ"))

    assert queues.count() == 4  # the retried Outbound Message was dropped at the door
    while queues.count():
        assert esm.poll().failed == []

    billed_once(billing, org, [(contract_id, account_id)])
    assert len(billing_posts(billing)) == 1
    metrics = observed.metrics()
    assert metrics["OutboundNotificationsDuplicate"] == 1
    assert metrics["DuplicateDeliveries"] == 3
