"""SQS at the edge, written once: batch sends with partial retry, dead-letter with a reason, one redelivery backoff.

Records are Powertools' ``SQSRecord`` everywhere (a handler that looks at the whole batch before
BatchProcessor wraps the event with ``SQSEvent(event).records``). Nothing here raises for an SQS failure:
each function returns what it could not do, so the caller reports those records as failed and nothing is lost.

Hand-written because neither boto3 nor Powertools re-sends only the failed entries of a batch, dead-letters
with a reason (a queue's redrive policy carries none), or backs a redelivery off through the visibility timeout.

Dead-letter attributes, the same for every function (docs/fire-and-forget.md, docs/remote-call-in.md):
``failure_reason`` (a short code), ``failure_detail`` (a sentence, never field values), ``failure_data``
(optional JSON: fields, products, Salesforce errors), ``source_message_id`` and ``source_queue_arn``.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from salesforce_access.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        MessageAttributeValueTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

BATCH_ENTRIES = 10  # SendMessageBatch / ChangeMessageVisibilityBatch limit
BATCH_BYTES = 256 * 1024  # one batch's total payload: the classic limit, below today's 1 MiB, so safe on any queue
MAX_VISIBILITY_SECONDS = 12 * 3600  # SQS's longest visibility timeout
DETAIL_CHARS = 1000  # failure_detail: enough for a sentence and a list of field names
DATA_CHARS = 64 * 1024  # failure_data: the structured details, cut where the message would no longer fit

__all__ = ["BATCH_ENTRIES", "MAX_VISIBILITY_SECONDS", "DeadLetterReason", "clear_queue_urls", "dead_letter",
           "postpone", "queue_url_for", "redelivery_delay", "send_batch", "string_attributes"]


# -- sending --------------------------------------------------------------------------------------------

def string_attributes(values: Mapping[str, str]) -> dict[str, MessageAttributeValueTypeDef]:
    """Message attributes from plain strings (SQS refuses empty values, so those are left out)."""
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items() if value}


def send_batch(sqs: SQSClient, queue_url: str, entries: Sequence[SendMessageBatchRequestEntryTypeDef], *,
               attempts: int = 3) -> list[SendMessageBatchRequestEntryTypeDef]:
    """Send every entry, re-sending only the failed ones; return the entries that could not be sent.

    Entries go in chunks of at most 10 and 256 KiB. Their ``Id`` is replaced by the position in the chunk,
    so callers may use any Id (unique or not). A BotoCoreError or ClientError counts as the whole chunk failed.
    The returned entries are the caller's own objects, in their order.
    """
    unsent: list[SendMessageBatchRequestEntryTypeDef] = []
    for chunk in _chunks(entries):
        pending = list(chunk)
        for _attempt in range(max(attempts, 1)):
            failed = _send_once(sqs, queue_url, pending)
            if not failed:
                break
            pending = failed
        else:
            unsent += pending
    return unsent


def _send_once(sqs: SQSClient, queue_url: str,
               chunk: list[SendMessageBatchRequestEntryTypeDef]) -> list[SendMessageBatchRequestEntryTypeDef]:
    request: list[SendMessageBatchRequestEntryTypeDef] = [{**entry, "Id": str(i)} for i, entry in enumerate(chunk)]
    try:
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=request)
    except (BotoCoreError, ClientError) as exc:
        logger.warning("SQS batch send failed", extra={"error": type(exc).__name__, "detail": str(exc)[:200],
                                                        "entries": len(chunk)})
        return chunk
    failed = response.get("Failed", [])
    if failed:
        logger.warning("SQS refused some entries", extra={"codes": sorted({f.get("Code", "") for f in failed}),
                                                          "entries": len(failed)})
    return [chunk[int(item["Id"])] for item in failed]


def _chunks(entries: Sequence[SendMessageBatchRequestEntryTypeDef]) -> Iterable[
        list[SendMessageBatchRequestEntryTypeDef]]:
    chunk: list[SendMessageBatchRequestEntryTypeDef] = []
    size = 0
    for entry in entries:
        entry_size = _size(entry)
        if chunk and (len(chunk) == BATCH_ENTRIES or size + entry_size > BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry_size
    if chunk:
        yield chunk


def _size(entry: SendMessageBatchRequestEntryTypeDef) -> int:
    """What SQS counts against the payload limit: the body and each attribute's name, type and value."""
    size = len(entry["MessageBody"].encode())
    for name, value in entry.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(value["DataType"].encode()) + len(str(value.get("StringValue", "")).encode())
    return size


# -- dead-lettering -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeadLetterReason:
    """Why a message was set aside: a short code, a sentence, and optionally structured details (as JSON)."""

    reason: str
    detail: str = ""
    data: Any = None


def dead_letter(sqs: SQSClient, queue_url: str, records: Iterable[SQSRecord],
                reasons: Mapping[str, DeadLetterReason]) -> set[str]:
    """Send the records named in ``reasons`` (by message id) to the dead-letter queue; the ids that made it.

    The body goes unchanged, so a DLQ redrive replays the message as it was; why it failed travels in the
    attributes, truncated so the message still fits. A record that did not make it stays the caller's to
    report as failed (SQS redelivers it, and the redrive policy dead-letters it in the end).
    """
    entries: list[SendMessageBatchRequestEntryTypeDef] = []
    ids: list[str] = []
    for record in records:
        why = reasons.get(record.message_id)
        if why is not None:
            entries.append({"Id": "0", "MessageBody": record.body,
                            "MessageAttributes": _reason_attributes(record, why)})
            ids.append(record.message_id)
    if not entries:
        return set()
    unsent = {id(entry) for entry in send_batch(sqs, queue_url, entries)}
    return {message_id for message_id, entry in zip(ids, entries, strict=True) if id(entry) not in unsent}


def _reason_attributes(record: SQSRecord, why: DeadLetterReason) -> dict[str, MessageAttributeValueTypeDef]:
    values = {
        "failure_reason": _clean(why.reason)[:256] or "unknown",
        "failure_detail": _clean(why.detail)[:DETAIL_CHARS] or _clean(why.reason)[:256] or "unknown",
        "source_message_id": record.message_id,
        "source_queue_arn": record.event_source_arn or "",
    }
    if why.data is not None:
        room = BATCH_BYTES - len(record.body.encode()) - sum(len(k) + len(v.encode()) + 6 for k, v in values.items())
        data = _clean(json.dumps(why.data, default=str, ensure_ascii=False))
        values["failure_data"] = _cut(data, min(DATA_CHARS, room - 64))
    return string_attributes(values)


def _clean(text: str) -> str:
    """SQS accepts only XML characters in attribute values: anything else becomes U+FFFD."""
    return "".join(c if c in "\t\n\r" or " " <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000"
                   else "\ufffd" for c in text)


def _cut(text: str, max_bytes: int) -> str:
    if max_bytes <= 0:
        return ""
    encoded = text.encode()
    return text if len(encoded) <= max_bytes else encoded[:max_bytes].decode(errors="ignore")


# -- redelivery backoff ---------------------------------------------------------------------------------

def redelivery_delay(receive_count: int, *, base_seconds: float, max_seconds: float,
                     uniform: Callable[[float, float], float] = random.uniform) -> int:
    """Seconds to hide a message before its next delivery: base * 2^(receives-1), capped, jittered in its upper half.

    The jitter spreads the retries of a batch that failed together; the cap is ``max_seconds`` and never more
    than SQS's 12 hours; a base of 0 gives 0. ``uniform`` is injectable for tests.
    """
    attempt = max(int(receive_count or 1), 1)
    ceiling = min(float(max_seconds), float(base_seconds) * 2 ** min(attempt - 1, 30), MAX_VISIBILITY_SECONDS)
    if ceiling <= 0:
        return 0  # a base of 0 means "redeliver at once" (local runs, tests)
    return min(math.ceil(ceiling / 2 + uniform(0, ceiling / 2)), MAX_VISIBILITY_SECONDS)


def postpone(sqs: SQSClient, records_with_delays: Iterable[tuple[SQSRecord, int]]) -> set[str]:
    """Hide each record for its delay (ChangeMessageVisibilityBatch); the message ids that were postponed.

    The queue is the record's own (eventSourceARN). One that could not be postponed keeps the queue's
    visibility timeout: it comes back sooner, nothing more.
    """
    by_queue: dict[str, list[tuple[SQSRecord, int]]] = {}
    for record, delay in records_with_delays:
        by_queue.setdefault(record.event_source_arn, []).append((record, delay))
    postponed: set[str] = set()
    for arn, items in by_queue.items():
        try:
            queue_url = queue_url_for(sqs, arn)
        except (BotoCoreError, ClientError, ValueError) as exc:
            logger.warning("could not postpone messages: queue unknown", extra={"error": type(exc).__name__})
            continue
        for start in range(0, len(items), BATCH_ENTRIES):
            chunk = items[start:start + BATCH_ENTRIES]
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": record.receipt_handle,
                 "VisibilityTimeout": min(max(int(delay), 0), MAX_VISIBILITY_SECONDS)}
                for i, (record, delay) in enumerate(chunk)]
            try:
                response = sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                logger.warning("could not postpone messages", extra={"error": type(exc).__name__,
                                                                      "detail": str(exc)[:200]})
                continue
            postponed |= {chunk[int(item["Id"])][0].message_id for item in response.get("Successful", [])}
            if response.get("Failed"):
                logger.warning("SQS did not postpone some messages",
                               extra={"codes": sorted({f.get("Code", "") for f in response["Failed"]})})
    return postponed


_QUEUE_URLS: dict[str, str] = {}


def clear_queue_urls() -> None:
    """Forget the queue URLs looked up so far (tests and benchmarks that recreate their queues)."""
    _QUEUE_URLS.clear()


def queue_url_for(sqs: SQSClient, queue_arn: str) -> str:
    """The URL of a queue from its ARN: one GetQueueUrl per queue and container.

    Asked rather than built from the ARN because the URL's host depends on the partition and the endpoint
    (China, VPC endpoints, a local SQS), which SQS knows and the ARN does not say.
    """
    if queue_arn not in _QUEUE_URLS:
        parts = queue_arn.split(":")
        if len(parts) != 6 or parts[2] != "sqs":
            raise ValueError("not an SQS queue ARN")
        _QUEUE_URLS[queue_arn] = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
    return _QUEUE_URLS[queue_arn]
