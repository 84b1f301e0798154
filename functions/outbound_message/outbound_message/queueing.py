"""Adapter: notifications onto the contracts queue, and the record of which ones are already there.

De-duplication on the notification Id keeps Salesforce's retries (same Id, for up to 24 hours, or 7 days)
from filling the queue: the Id is recorded in DynamoDB only after SQS has accepted the message, so a crash
between the two can only cause a duplicate message, never a lost one; the consumer's idempotency per
contract absorbs it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

KEY_PREFIX = "outbound-notification#"
SEND_BATCH = 10  # SendMessageBatch limit
GET_BATCH = 100  # BatchGetItem limit


class QueueingFailed(Exception):
    """SQS refused some notifications: they are not durably queued, so no Ack may be sent."""


@dataclass(frozen=True)
class OutgoingMessage:
    notification_id: str
    body: dict[str, Any]


class NotificationQueue:
    def __init__(self, sqs: Any, dynamodb: Any, queue_url: str, table_name: str, ttl_seconds: int):
        self._sqs = sqs
        self._dynamodb = dynamodb
        self._queue_url = queue_url
        self._table = table_name
        self._ttl = ttl_seconds

    def already_queued(self, notification_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(notification_ids), GET_BATCH):
            keys = [{"id": {"S": KEY_PREFIX + nid}} for nid in notification_ids[start:start + GET_BATCH]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True,
                                                     "ProjectionExpression": "id"}}
            while request:
                result = self._dynamodb.batch_get_item(RequestItems=request)
                found |= {item["id"]["S"][len(KEY_PREFIX):] for item in result["Responses"].get(self._table, [])}
                request = result.get("UnprocessedKeys") or {}
        return found

    def send(self, messages: Sequence[OutgoingMessage]) -> None:
        """Queue every message; raise QueueingFailed after recording those that did get queued."""
        failed: list[str] = []
        for start in range(0, len(messages), SEND_BATCH):
            chunk = messages[start:start + SEND_BATCH]
            result = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=[{
                "Id": str(index),
                "MessageBody": json.dumps(message.body, separators=(",", ":")),
                "MessageAttributes": {
                    "source": {"DataType": "String", "StringValue": "outbound_message"},
                    "notification_id": {"DataType": "String", "StringValue": message.notification_id},
                },
            } for index, message in enumerate(chunk)])
            queued = [chunk[int(entry["Id"])].notification_id for entry in result.get("Successful", [])]
            failed += [f"{chunk[int(entry['Id'])].notification_id} ({entry.get('Code')})"
                       for entry in result.get("Failed", [])]
            self._record(queued)
        if failed:
            raise QueueingFailed(f"SQS did not accept {len(failed)} notification(s): {', '.join(failed)}")

    def _record(self, notification_ids: Iterable[str]) -> None:
        expiration = int(time.time()) + self._ttl
        items = [{"PutRequest": {"Item": {"id": {"S": KEY_PREFIX + nid}, "status": {"S": "QUEUED"},
                                          "expiration": {"N": str(expiration)}}}} for nid in notification_ids]
        for start in range(0, len(items), 25):  # BatchWriteItem limit
            request: dict[str, Any] = {self._table: items[start:start + 25]}
            for _ in range(5):
                request = self._dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(0.1)
