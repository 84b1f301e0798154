"""Adapter: notifications onto the contracts queue, and the record of which ones are already there.

De-duplication on the notification Id keeps Salesforce's retries (same Id, for up to 24 hours, or 7 days)
from filling the queue: the Id is recorded in DynamoDB only after SQS has accepted the message, so a crash
between the two can only cause a duplicate message, never a lost one; the consumer's idempotency per
contract absorbs it. Sending (chunks of 10, only the refused entries sent again) is the edge kit's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge_kit.sqs import send_batch, string_attributes

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        KeysAndAttributesUnionTypeDef,
        WriteRequestTypeDef,
        WriteRequestUnionTypeDef,
    )
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

KEY_PREFIX = "outbound-notification#"
GET_BATCH = 100  # BatchGetItem limit
WRITE_BATCH = 25  # BatchWriteItem limit
WRITE_ATTEMPTS = 5  # unprocessed items left after these are only a possible duplicate later, never a loss


class QueueingFailed(Exception):
    """SQS refused some notifications: they are not durably queued, so no Ack may be sent."""


@dataclass(frozen=True)
class OutgoingMessage:
    notification_id: str
    body: dict[str, Any]


class NotificationQueue:
    def __init__(self, sqs: SQSClient, dynamodb: DynamoDBClient, queue_url: str, table_name: str,
                 ttl_seconds: int, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self._sqs = sqs
        self._dynamodb = dynamodb
        self._queue_url = queue_url
        self._table = table_name
        self._ttl = ttl_seconds
        self._clock = clock
        self._sleep = sleep

    def already_queued(self, notification_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(notification_ids), GET_BATCH):
            keys = [{"id": {"S": KEY_PREFIX + nid}} for nid in notification_ids[start:start + GET_BATCH]]
            request: Mapping[str, KeysAndAttributesUnionTypeDef] = {
                self._table: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "id"}}
            while request:
                result = self._dynamodb.batch_get_item(RequestItems=request)
                found |= {str(item["id"]["S"])[len(KEY_PREFIX):] for item in result["Responses"].get(self._table, [])}
                request = result.get("UnprocessedKeys") or {}
        return found

    def send(self, messages: Sequence[OutgoingMessage]) -> None:
        """Queue every message; raise QueueingFailed after recording those that did get queued."""
        entries: list[SendMessageBatchRequestEntryTypeDef] = [{
            "Id": message.notification_id,  # unique (the service de-duplicates); send_batch numbers its own
            "MessageBody": json.dumps(message.body, separators=(",", ":")),
            "MessageAttributes": string_attributes({"source": "outbound_message",
                                                    "notification_id": message.notification_id}),
        } for message in messages]
        unsent = {entry["Id"] for entry in send_batch(self._sqs, self._queue_url, entries)}
        self._record(m.notification_id for m in messages if m.notification_id not in unsent)
        if unsent:
            raise QueueingFailed(f"SQS did not accept {len(unsent)} notification(s): {', '.join(sorted(unsent))}")

    def _record(self, notification_ids: Iterable[str]) -> None:
        expiration = int(self._clock()) + self._ttl
        items: list[WriteRequestTypeDef] = [
            {"PutRequest": {"Item": {"id": {"S": KEY_PREFIX + nid}, "status": {"S": "QUEUED"},
                                     "expiration": {"N": str(expiration)}}}} for nid in notification_ids]
        for start in range(0, len(items), WRITE_BATCH):
            request: Mapping[str, Sequence[WriteRequestUnionTypeDef]] = {self._table: items[start:start + WRITE_BATCH]}
            for _ in range(WRITE_ATTEMPTS):
                request = self._dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
                if not request:
                    break
                self._sleep(0.1)
