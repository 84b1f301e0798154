"""Failure modes: poison messages and billing refusals reach the DLQ after one try, outages are retried
with backoff and lose nothing, a lost answer from billing opens no second account."""

from __future__ import annotations

import json

import boto3
import pytest
from billing_consumer import consumer as application

from .conftest import MAX_RECEIVE_COUNT, api_body, billing_posts, relay_event


def dlq_reasons(queues) -> dict[str, str]:
    return {m["Body"]: m["MessageAttributes"]["failure_reason"]["StringValue"] for m in queues.dead_letters()}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("not json at all", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"account_id": "001000000000001AAA"}), "contract_id: Field required"),
        (json.dumps({"contract_id": "001000000000001AAA", "account_id": "001000000000001AAA"}), "a Contract id"),
        (json.dumps({"contract_id": "800000000000001AAB", "account_id": "001000000000001AAA"}), "checksum"),
        (json.dumps({**relay_event("800000000000001AAA", "001000000000001AAA"), "detail-type": "Other__e"}),
         "detail-type"),
    ],
)
def test_a_poison_message_reaches_the_dlq_after_one_try(esm, queues, billing, body, detail):
    message_id = queues.send(body)

    delivery = esm.poll()

    assert delivery.failed == []  # reported as processed: SQS deletes it, no retry
    assert queues.count() == 0
    [dead] = queues.dead_letters()
    assert dead["Body"] == body  # unchanged, so a redrive replays exactly what arrived
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attributes["failure_reason"] == "invalid_message"
    assert detail in attributes["failure_detail"]
    assert attributes["source_message_id"] == message_id
    assert attributes["source_queue_arn"] == queues.arn
    assert billing.requests() == []


def test_dlq_detail_names_fields_but_never_their_values(esm, queues):
    secret_looking = "4111111111111111"
    queues.send({"contract_id": secret_looking, "account_id": "001000000000001AAA"})
    esm.poll()
    [dead] = queues.dead_letters()
    detail = dead["MessageAttributes"]["failure_detail"]["StringValue"]
    assert "contract_id" in detail
    assert secret_looking not in detail


def test_billing_refusal_goes_to_the_dlq_once_and_marks_the_contract_failed(esm, queues, billing, org):
    contract_id, account_id = org.new_contract()
    billing.block_account(account_id)  # billing answers 422 account_blocked
    body = api_body(contract_id, account_id)
    queues.send(body)

    delivery = esm.poll()

    assert delivery.failed == []
    assert len(billing_posts(billing)) == 1  # one try, no useless retries
    assert dlq_reasons(queues) == {json.dumps(body): "billing_rejected"}
    contract = org.get("Contract", contract_id)
    assert contract["Billing_Status__c"] == "Failed"
    assert contract["Billing_Account_Number__c"] is None


@pytest.mark.parametrize("status", ["400", "404", "422"])
def test_every_billing_4xx_is_permanent(esm, queues, billing, org, status):
    contract_id, account_id = org.new_contract()
    billing.inject(status, count=1, method="POST")
    queues.send(api_body(contract_id, account_id))
    esm.poll()
    assert len(billing_posts(billing)) == 1
    assert list(dlq_reasons(queues).values()) == ["billing_rejected"]


def test_billing_down_then_recovering_loses_nothing(esm, queues, billing, org):
    contracts = [org.new_contract() for _ in range(3)]
    for contract_id, account_id in contracts:
        queues.send(api_body(contract_id, account_id))

    billing.stop()  # connections refused
    down = esm.poll()
    assert sorted(down.failed) == sorted(down.received)  # every message reported for retry
    assert queues.count() == 3
    assert [org.get("Contract", c)["Billing_Status__c"] for c, _ in contracts] == ["Pending"] * 3

    billing.start()
    recovered = esm.poll()

    assert recovered.failed == []
    assert queues.count() == 0
    assert queues.dead_letters() == []
    for contract_id, _ in contracts:
        [account] = billing.accounts(contract_id=contract_id)
        contract = org.get("Contract", contract_id)
        assert contract["Billing_Account_Number__c"] == account["account_number"]
        assert contract["Billing_Status__c"] == "Active"
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in queues.receive()] == []  # nothing left behind


def test_after_billing_fails_the_rest_of_the_batch_is_not_sent_to_it(esm, queues, billing, org):
    for _ in range(3):
        queues.send(api_body(*org.new_contract()))
    billing.inject("503", count=2)  # the first record's try and its in-process retry

    delivery = esm.poll()

    assert len(delivery.failed) == 3
    assert len(billing.requests()) == 2  # records 2 and 3 were failed fast, not sent to a struggling billing


def test_a_single_503_is_retried_in_process(esm, queues, billing, org):
    contract_id, account_id = org.new_contract()
    billing.inject("503", count=1)
    queues.send(api_body(contract_id, account_id))

    delivery = esm.poll()

    assert delivery.failed == []
    assert [r["status"] for r in billing_posts(billing)] == [503, 201]
    assert len({r["headers"]["idempotency-key"] for r in billing_posts(billing)}) == 1
    assert len(billing.accounts(contract_id=contract_id)) == 1


def test_a_lost_billing_answer_opens_no_second_account(esm, queues, billing, org, monkeypatch):
    # Billing opened the account but the connection dropped before its answer, twice (the in-process
    # retry too). The message is retried later with the same Idempotency-Key: billing replays the account.
    contract_id, account_id = org.new_contract()
    billing.inject("lost_response", count=2)
    queues.send(api_body(contract_id, account_id))

    assert len(esm.poll().failed) == 1
    assert len(billing.accounts(contract_id=contract_id)) == 1
    assert esm.poll().failed == []

    assert len(billing.accounts(contract_id=contract_id)) == 1
    statuses = [r["status"] for r in billing_posts(billing)]
    assert statuses == [201, 200, 200]  # opened, replayed (answer lost), replayed
    assert org.get("Contract", contract_id)["Billing_Account_Number__c"] == billing.accounts()[0]["account_number"]


def test_a_lost_answer_then_another_entry_point_with_other_fields_finds_the_account(esm, queues, billing, org):
    contract_id, account_id = org.new_contract()
    billing.inject("lost_response", count=2)
    queues.send(api_body(contract_id, account_id))
    esm.poll()
    # Same contract via Event Relay, with a different signing date: billing refuses the reused key with a
    # different body, and the consumer finds the account the first delivery opened.
    queues.sqs.purge_queue(QueueUrl=queues.url)
    queues.send(relay_event(contract_id, account_id, signed_at="2025-03-02T08:00:00.000Z"))

    assert esm.poll().failed == []
    [account] = billing.accounts(contract_id=contract_id)
    assert org.get("Contract", contract_id)["Billing_Account_Number__c"] == account["account_number"]


def test_billing_timeout_is_transient(esm, queues, billing, org):
    contract_id, account_id = org.new_contract()
    billing.inject("timeout", count=2, delay_seconds=3)  # the consumer's read timeout is 1 s in these tests
    queues.send(api_body(contract_id, account_id))
    assert len(esm.poll().failed) == 1
    assert billing.accounts() == []
    assert esm.poll().failed == []
    assert len(billing.accounts(contract_id=contract_id)) == 1


def test_transient_failures_are_retried_with_growing_backoff(esm, queues, billing, org, monkeypatch):
    monkeypatch.setenv("RETRY_BASE_SECONDS", "30")
    application.reset()
    queues.send(api_body(*org.new_contract()))
    billing.stop()
    message = queues.receive()

    esm.poll(messages=message)

    assert queues.receive() == []  # hidden for the backoff delay, not redelivered at once
    visibility = []
    sqs = application.dependencies().sqs
    original = sqs.change_message_visibility_batch
    monkeypatch.setattr(sqs, "change_message_visibility_batch", lambda **kw: (
        visibility.extend(entry["VisibilityTimeout"] for entry in kw["Entries"]), original(**kw))[1])
    for receive_count in (1, 3, 10):
        message[0]["Attributes"]["ApproximateReceiveCount"] = str(receive_count)
        esm.poll(messages=message)
    assert 15 <= visibility[0] <= 30  # 30 s ceiling, jittered in its upper half
    assert 60 <= visibility[1] <= 120
    assert 450 <= visibility[2] <= 900  # capped at RETRY_MAX_SECONDS


def test_a_message_failing_maxreceivecount_times_lands_in_the_dlq_via_redrive(esm, queues, billing, org):
    body = api_body(*org.new_contract())
    queues.send(body)
    billing.stop()
    for _ in range(MAX_RECEIVE_COUNT):
        assert len(esm.poll().failed) == 1
    assert queues.receive() == []  # the next receive moves it to the DLQ
    [dead] = queues.dead_letters()
    assert json.loads(dead["Body"]) == body


def test_a_mixed_batch_reports_only_the_retryable_record(esm, queues, billing, org, salesforce):
    good = api_body(*org.new_contract())
    refused_contract, refused_account = org.new_contract()
    billing.block_account(refused_account)
    slow_contract, slow_account = org.new_contract()
    # Salesforce refuses this Contract's callback for now (API allocation used up): transient.
    salesforce.inject("REQUEST_LIMIT_EXCEEDED", count=1, method="PATCH", path=slow_contract)
    queues.send(good)
    queues.send("{broken")
    queues.send(api_body(refused_contract, refused_account))
    retry_id = queues.send(api_body(slow_contract, slow_account))

    delivery = esm.poll()

    assert delivery.failed == [retry_id]
    assert len(billing.accounts(contract_id=good["contract_id"])) == 1
    assert sorted(dlq_reasons(queues).values()) == ["billing_rejected", "invalid_message"]
    # The retry needs no second billing call: the account number comes from the idempotency record.
    posts_before = len(billing_posts(billing))
    assert esm.poll().failed == []
    assert len(billing_posts(billing)) == posts_before
    [account] = billing.accounts(contract_id=slow_contract)
    assert org.get("Contract", slow_contract)["Billing_Account_Number__c"] == account["account_number"]


def test_a_concurrent_delivery_of_the_same_contract_is_retried_not_billed_twice(esm, queues, billing, org):
    # Two invocations get the same contract at once (two entry points, two pollers): while the first waits
    # for billing, the second finds the idempotency record in progress and hands its message back.
    import threading

    contract_id, account_id = org.new_contract()
    queues.send(api_body(contract_id, account_id))
    queues.send(relay_event(contract_id, account_id))
    first, second = queues.receive(max_messages=1), queues.receive(max_messages=1)
    billing.set_latency(0.5)
    results = {}
    worker = threading.Thread(target=lambda: results.setdefault("first", esm.poll(messages=first)))
    worker.start()
    table = boto3.resource("dynamodb").Table("state")
    while not table.scan()["Items"] and worker.is_alive():  # the first has claimed the contract
        threading.Event().wait(0.02)
    results["second"] = esm.poll(messages=second)
    worker.join()

    assert results["first"].failed == []
    assert results["second"].failed == [second[0]["MessageId"]]
    assert len(billing.accounts(contract_id=contract_id)) == 1
    billing.set_latency(0)
    assert esm.poll(messages=second).failed == []  # the retry finds the finished record
    assert len(billing_posts(billing)) == 1


def test_a_callback_to_a_missing_contract_goes_to_the_dlq(esm, queues, billing):
    queues.send(api_body("800000000000999AAA", "001000000000001AAA"))
    esm.poll()
    assert list(dlq_reasons(queues).values()) == ["callback_rejected"]


def test_salesforce_unavailable_retries_the_callback_without_billing_again(esm, queues, billing, org, salesforce):
    contract_id, account_id = org.new_contract()
    salesforce.inject("REQUEST_LIMIT_EXCEEDED", count=1, method="PATCH")
    queues.send(api_body(contract_id, account_id))

    assert len(esm.poll().failed) == 1
    assert org.get("Contract", contract_id)["Billing_Status__c"] == "Pending"
    assert esm.poll().failed == []

    assert len(billing_posts(billing)) == 1
    assert org.get("Contract", contract_id)["Billing_Status__c"] == "Active"


def test_no_time_left_hands_the_message_back_without_calling_billing(esm, queues, billing, org, lambda_context):
    queues.send(api_body(*org.new_contract()))
    lambda_context.timeout_ms = 3_000
    delivery = esm.poll(context=lambda_context)
    assert len(delivery.failed) == 1
    assert billing.requests() == []


def test_a_poison_message_the_dlq_does_not_take_stays_on_the_queue(esm, queues, billing, monkeypatch):
    monkeypatch.setenv("CONTRACTS_DLQ_URL", queues.dlq_url.replace("contracts-dlq", "no-such-dlq"))
    application.reset()
    message_id = queues.send("not json at all")

    delivery = esm.poll()

    assert delivery.failed == [message_id]  # not deleted: SQS delivers it again, the redrive policy ends it
    assert queues.count() == 1
    assert queues.dead_letters() == []
    assert billing.requests() == []
