"""edge_kit.sqs against moto: partial sends retried, give-ups returned, dead letters with reasons, backoff."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from edge_kit import sqs as kit
from edge_kit.sqs import DeadLetterReason, dead_letter, postpone, redelivery_delay, send_batch, string_attributes


@pytest.fixture
def client(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    kit.clear_queue_urls()  # moto's queues live for one test
    return boto3.client("sqs", region_name="eu-west-1")


@pytest.fixture
def queue(client: Any) -> Callable[[str], tuple[str, str]]:
    def create(name: str) -> tuple[str, str]:
        url = client.create_queue(QueueName=name)["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn
    return create


def drain(client: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                          AttributeNames=["All"]).get("Messages", []):
        messages += batch
        client.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                           for i, m in enumerate(batch)])
    return messages


def received_records(client: Any, url: str, arn: str, count: int) -> list[SQSRecord]:
    """Messages received the way Lambda's event source mapping hands them over."""
    messages: list[dict[str, Any]] = []
    while len(messages) < count:
        messages += client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                           VisibilityTimeout=0).get("Messages", [])
    return [SQSRecord({"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                       "attributes": m.get("Attributes", {}), "messageAttributes": {}, "eventSource": "aws:sqs",
                       "eventSourceARN": arn, "awsRegion": "eu-west-1"}) for m in messages[:count]]


def entries(count: int, size: int = 10) -> list[Any]:
    return [{"Id": "same", "MessageBody": f"{i:04d}".ljust(size, "x"),
             "MessageAttributes": string_attributes({"n": str(i), "empty": ""})} for i in range(count)]


# -- send_batch -----------------------------------------------------------------------------------------

def test_every_entry_is_sent_in_chunks_of_ten_whatever_its_id(client, queue):
    url, _ = queue("out")
    calls: list[int] = []
    original = client.send_message_batch
    client.send_message_batch = lambda **kw: (calls.append(len(kw["Entries"])), original(**kw))[1]

    assert send_batch(client, url, entries(23)) == []

    assert calls == [10, 10, 3]
    sent = drain(client, url)
    assert sorted(m["Body"][:4] for m in sent) == [f"{i:04d}" for i in range(23)]
    assert all(set(m["MessageAttributes"]) == {"n"} for m in sent)  # the empty attribute was left out


def test_chunks_stay_under_the_batch_payload_limit(client, queue):
    url, _ = queue("big")
    calls: list[int] = []
    original = client.send_message_batch
    client.send_message_batch = lambda **kw: (calls.append(len(kw["Entries"])), original(**kw))[1]

    assert send_batch(client, url, entries(5, size=100_000)) == []

    assert calls == [2, 2, 1]
    assert len(drain(client, url)) == 5


def test_only_the_failed_entries_are_sent_again(client, queue):
    url, _ = queue("partial")
    calls: list[list[str]] = []
    original = client.send_message_batch

    def flaky(**kw: Any) -> Any:
        calls.append([e["MessageBody"][:4] for e in kw["Entries"]])
        if len(calls) > 1:
            return original(**kw)
        refused = {"1", "3"}
        result = original(QueueUrl=kw["QueueUrl"], Entries=[e for e in kw["Entries"] if e["Id"] not in refused])
        result["Failed"] = [{"Id": i, "SenderFault": False, "Code": "InternalError"} for i in sorted(refused)]
        return result

    client.send_message_batch = flaky
    assert send_batch(client, url, entries(5)) == []

    assert calls == [["0000", "0001", "0002", "0003", "0004"], ["0001", "0003"]]
    assert sorted(m["Body"][:4] for m in drain(client, url)) == ["0000", "0001", "0002", "0003", "0004"]


def test_entries_that_keep_failing_are_returned_after_the_attempts(client, queue):
    url, _ = queue("stubborn")
    original = client.send_message_batch
    calls = []

    def refuses_the_second(**kw: Any) -> Any:
        calls.append(len(kw["Entries"]))
        keep = [e for e in kw["Entries"] if not e["MessageBody"].startswith("0001")]
        result = original(QueueUrl=kw["QueueUrl"], Entries=keep) if keep else {"Successful": []}
        result["Failed"] = [{"Id": e["Id"], "SenderFault": True, "Code": "InvalidMessageContents"}
                            for e in kw["Entries"] if e["MessageBody"].startswith("0001")]
        return result

    client.send_message_batch = refuses_the_second
    batch = entries(3)
    unsent = send_batch(client, url, batch, attempts=3)

    assert unsent == [batch[1]]
    assert unsent[0] is batch[1]  # the caller's own entry, Id untouched
    assert unsent[0]["Id"] == "same"
    assert calls == [3, 1, 1]
    assert sorted(m["Body"][:4] for m in drain(client, url)) == ["0000", "0002"]


def test_a_client_error_counts_as_the_whole_chunk_failed(client, queue):
    batch = entries(12)
    unsent = send_batch(client, "https://sqs.eu-west-1.amazonaws.com/123456789012/missing", batch, attempts=2)
    assert unsent == batch


# -- dead_letter ----------------------------------------------------------------------------------------

def test_dead_letters_keep_the_body_and_carry_the_reason(client, queue):
    source_url, source_arn = queue("work")
    dlq_url, _ = queue("work-dlq")
    bodies = ['{"order": 1}', '{"order": 2}', "not json at all"]
    for body in bodies:
        client.send_message(QueueUrl=source_url, MessageBody=body)
    records = received_records(client, source_url, source_arn, 3)
    by_body = {r.body: r for r in records}
    reasons = {
        by_body['{"order": 1}'].message_id: DeadLetterReason("unknown_products", "no price for NOPE-1",
                                                              data={"products": ["NOPE-1"]}),
        by_body["not json at all"].message_id: DeadLetterReason("invalid_message"),
    }

    sent = dead_letter(client, dlq_url, records, reasons)

    assert sent == set(reasons)
    letters = {m["Body"]: {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}
               for m in drain(client, dlq_url)}
    assert set(letters) == {'{"order": 1}', "not json at all"}  # bodies unchanged, the healthy one not sent
    assert letters['{"order": 1}'] == {
        "failure_reason": "unknown_products", "failure_detail": "no price for NOPE-1",
        "failure_data": json.dumps({"products": ["NOPE-1"]}),
        "source_message_id": by_body['{"order": 1}'].message_id, "source_queue_arn": source_arn,
    }
    assert letters["not json at all"]["failure_detail"] == "invalid_message"  # never empty: SQS refuses that
    assert "failure_data" not in letters["not json at all"]


def test_reasons_are_truncated_and_cleaned_to_what_sqs_accepts(client, queue):
    source_url, source_arn = queue("work")
    dlq_url, _ = queue("work-dlq")
    client.send_message(QueueUrl=source_url, MessageBody="b" * 200_000)
    [record] = received_records(client, source_url, source_arn, 1)
    reason = DeadLetterReason("invalid_message", "bad\x00byte " + "d" * 5000, data={"blob": "z" * 300_000})

    assert dead_letter(client, dlq_url, [record], {record.message_id: reason}) == {record.message_id}

    [letter] = drain(client, dlq_url)
    attributes = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert letter["Body"] == "b" * 200_000
    assert attributes["failure_detail"].startswith("bad\ufffdbyte ")
    assert len(attributes["failure_detail"]) == kit.DETAIL_CHARS
    assert 0 < len(attributes["failure_data"]) < 64 * 1024
    assert len(letter["Body"]) + sum(len(k) + len(v) for k, v in attributes.items()) <= kit.BATCH_BYTES


def test_dead_letters_that_cannot_be_sent_are_not_reported_sent(client, queue):
    source_url, source_arn = queue("work")
    client.send_message(QueueUrl=source_url, MessageBody="x")
    [record] = received_records(client, source_url, source_arn, 1)
    missing = "https://sqs.eu-west-1.amazonaws.com/123456789012/no-such-dlq"

    assert dead_letter(client, missing, [record], {record.message_id: DeadLetterReason("invalid_message")}) == set()
    assert dead_letter(client, missing, [record], {}) == set()


# -- redelivery backoff ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("receives", "low", "high"), [(1, 15, 30), (2, 30, 60), (3, 60, 120), (6, 450, 900),
                                                        (40, 450, 900), (0, 15, 30)])
def test_redelivery_delay_doubles_and_is_capped(receives: int, low: int, high: int):
    def lowest(a: float, b: float) -> float:
        return a

    def highest(a: float, b: float) -> float:
        return b

    assert redelivery_delay(receives, base_seconds=30, max_seconds=900, uniform=lowest) == low
    assert redelivery_delay(receives, base_seconds=30, max_seconds=900, uniform=highest) == high
    assert low <= redelivery_delay(receives, base_seconds=30, max_seconds=900) <= high


def test_redelivery_delay_never_exceeds_twelve_hours():
    assert redelivery_delay(50, base_seconds=3600, max_seconds=10**9, uniform=lambda a, b: b) == 12 * 3600
    assert redelivery_delay(1, base_seconds=0, max_seconds=900, uniform=lambda a, b: b) == 0  # at once
    assert redelivery_delay(1, base_seconds=1, max_seconds=900, uniform=lambda a, b: a) == 1


# -- postpone -------------------------------------------------------------------------------------------

def test_postpone_hides_each_record_for_its_delay(client, queue):
    url, arn = queue("work")
    for body in ("later", "now"):
        client.send_message(QueueUrl=url, MessageBody=body)
    records = {r.body: r for r in received_records(client, url, arn, 2)}
    lookups = []
    original = client.get_queue_url
    client.get_queue_url = lambda **kw: (lookups.append(kw), original(**kw))[1]

    postponed = postpone(client, [(records["later"], 600), (records["now"], 0)])

    assert postponed == {records["later"].message_id, records["now"].message_id}
    assert [m["Body"] for m in client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]] == ["now"]
    assert postpone(client, [(records["now"], 0)]) == {records["now"].message_id}
    assert len(lookups) == 1  # the queue URL is asked once per container


def test_postpone_reports_what_it_could_not_postpone(client, queue):
    url, arn = queue("work")
    client.send_message(QueueUrl=url, MessageBody="x")
    [record] = received_records(client, url, arn, 1)
    stale = SQSRecord({**record.raw_event, "receiptHandle": "not-a-receipt-handle"})
    elsewhere = SQSRecord({**record.raw_event, "eventSourceARN": arn.replace(":work", ":gone")})

    assert postpone(client, [(stale, 60), (elsewhere, 60), (record, 60)]) == {record.message_id}
    assert postpone(client, []) == set()
