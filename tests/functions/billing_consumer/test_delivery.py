"""End to end through moto SQS/DynamoDB, the billing stand-in and the Salesforce emulator: each contract
opens exactly one billing account, whatever the entry point and however often it is delivered."""

from __future__ import annotations

from .conftest import api_body, billing_posts, outbound_message, relay_event


def test_a_signed_contract_opens_a_billing_account_and_updates_the_contract(esm, queues, billing, org):
    contract_id, account_id = org.new_contract()
    queues.send(api_body(contract_id, account_id))

    delivery = esm.poll()

    assert delivery.response == {"batchItemFailures": []}
    accounts = billing.accounts(contract_id=contract_id)
    assert len(accounts) == 1
    assert accounts[0]["account_id"] == account_id
    assert accounts[0]["signed_on"] == "2025-03-01"
    contract = org.get("Contract", contract_id)
    assert contract["Billing_Account_Number__c"] == accounts[0]["account_number"]
    assert contract["Billing_Status__c"] == "Active"
    assert queues.count() == 0
    assert queues.dead_letters() == []


def test_the_same_contract_through_two_entry_points_opens_one_account(esm, queues, billing, org):
    contract_id, account_id = org.new_contract()
    queues.send(api_body(contract_id, account_id))
    queues.send(relay_event(contract_id, account_id))

    first = esm.poll()
    second = esm.poll()  # whatever was not in the first batch

    assert first.failed == second.failed == []
    assert len(billing.accounts(contract_id=contract_id)) == 1
    assert len(billing_posts(billing)) == 1  # the duplicate never reached billing
    assert org.get("Contract", contract_id)["Billing_Status__c"] == "Active"
    assert queues.count() == 0


def test_all_three_entry_points_in_one_batch_open_one_account(esm, queues, billing, org):
    contract_id, account_id = org.new_contract()
    queues.send(api_body(contract_id, account_id))
    queues.send(relay_event(contract_id, account_id))
    queues.send(outbound_message(contract_id, account_id))

    delivery = esm.poll()

    assert len(delivery.received) == 3
    assert delivery.failed == []
    assert len(billing_posts(billing)) == 1
    assert len(billing.accounts(contract_id=contract_id)) == 1


def test_an_sqs_redelivery_opens_no_second_account(esm, queues, billing, org):
    # At-least-once: the same message (same SQS message id) handed to the function twice, as after a
    # visibility timeout that expired before the delete.
    contract_id, account_id = org.new_contract()
    queues.send(api_body(contract_id, account_id))
    messages = queues.receive()

    esm.poll(messages=messages)
    esm.poll(messages=messages)

    assert len(billing_posts(billing)) == 1
    assert len(billing.accounts(contract_id=contract_id)) == 1


def test_a_client_retry_is_a_new_message_but_the_same_contract(esm, queues, billing, org):
    # An API client that retries its POST creates a second SQS message with a new message id: the business
    # key (the contract id), not the message id, is what makes it a duplicate.
    contract_id, account_id = org.new_contract()
    first = queues.send(api_body(contract_id, account_id))
    esm.poll()
    second = queues.send(api_body(contract_id, account_id))
    esm.poll()

    assert first != second
    assert len(billing_posts(billing)) == 1


def test_15_and_18_character_ids_are_the_same_contract(esm, queues, billing, org):
    contract_id, account_id = org.new_contract()
    queues.send(api_body(contract_id[:15], account_id[:15]))
    queues.send(relay_event(contract_id, account_id))
    esm.poll()
    esm.poll()

    assert len(billing_posts(billing)) == 1
    assert billing.accounts()[0]["contract_id"] == contract_id  # billing always gets the 18-character id


def test_different_contracts_each_get_their_account(esm, queues, billing, org):
    contracts = [org.new_contract() for _ in range(3)]
    for contract_id, account_id in contracts:
        queues.send(api_body(contract_id, account_id))

    assert esm.poll().failed == []

    numbers = {org.get("Contract", c)["Billing_Account_Number__c"] for c, _ in contracts}
    assert len(numbers) == 3
    assert numbers == {a["account_number"] for a in billing.accounts()}
