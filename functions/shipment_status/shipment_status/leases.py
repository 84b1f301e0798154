"""Per-shipment leases in the state table (DynamoDB conditional writes).

Why a lease: the ordering rule reads the record, then writes it. Two invocations for the same shipment (the
bus delivers concurrently, and retries overlap new deliveries) could both read the old record, and the
older change could be written last, moving the shipment back. A lease serialises read-check-write per
shipment; it expires with the invocation that took it, so a crashed holder blocks nobody for long.
Written by hand because Powertools idempotency locks one payload, not one business key across payloads.

The same item remembers the newest status time published for the shipment, so a retry after a failed
publish publishes, and a duplicate delivery does not publish twice.

Item: ``id = "shipment-status#<tracking number>"``, ``lease_owner``, ``lease_expires`` (epoch seconds),
``published_time`` (ISO 8601, UTC, milliseconds: compares as text), ``expiration`` (the table's TTL).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from shipment_status.models import salesforce_datetime
from shipment_status.service import Lease

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

KEY_PREFIX = "shipment-status#"
RETENTION_SECONDS = 90 * 24 * 3600  # kept while a carrier may still send late events for the shipment


class LeaseStoreUnavailable(RuntimeError):
    """DynamoDB did not answer: nothing was written to Salesforce, the whole delivery is retried."""


class DynamoDBLeases:
    def __init__(self, client: DynamoDBClient, table_name: str, owner: str, *, lease_seconds: float,
                 wait_seconds: float = 3.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.client = client
        self.table_name = table_name
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.sleep = sleep

    def acquire(self, tracking_numbers: Iterable[str]) -> dict[str, Lease]:
        """Leases for as many of the shipments as can be had within `wait_seconds` (short backoff between
        attempts: a holder needs about a second for its Salesforce calls)."""
        wanted = sorted(set(tracking_numbers))
        held: dict[str, Lease] = {}
        deadline = self.clock() + self.wait_seconds
        delay = 0.05
        while True:
            for tracking_number in [t for t in wanted if t not in held]:
                lease = self._try(tracking_number)
                if lease is not None:
                    held[tracking_number] = lease
            if len(held) == len(wanted) or self.clock() + delay > deadline:
                return held
            self.sleep(delay)
            delay = min(delay * 2, 0.8)

    def _try(self, tracking_number: str) -> Lease | None:
        now = self.clock()
        try:
            item = self.client.update_item(
                TableName=self.table_name,
                Key={"id": {"S": KEY_PREFIX + tracking_number}},
                UpdateExpression="SET lease_owner = :owner, lease_expires = :until, expiration = :ttl",
                ConditionExpression="attribute_not_exists(lease_owner) OR lease_expires < :now OR lease_owner = :owner",
                ExpressionAttributeValues={
                    ":owner": {"S": self.owner},
                    ":until": {"N": f"{now + self.lease_seconds:.3f}"},
                    ":now": {"N": f"{now:.3f}"},
                    ":ttl": {"N": str(int(now) + RETENTION_SECONDS)},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise LeaseStoreUnavailable(f"state table: {exc.response['Error']['Code']}") from None
        except Exception as exc:  # connection errors and timeouts of botocore
            raise LeaseStoreUnavailable(f"state table unreachable: {type(exc).__name__}") from None
        published = item.get("published_time", {}).get("S")
        return Lease(tracking_number, datetime.fromisoformat(published) if published else None)

    def release(self, tracking_number: str, published_time: datetime | None = None) -> None:
        """Give the lease back (only ours), recording a newly published status time.

        A failure here is not raised: the lease expires by itself, and losing the published time at worst
        publishes the same status once more on a later duplicate delivery.
        """
        update = "REMOVE lease_owner, lease_expires"
        values: dict[str, AttributeValueTypeDef] = {":owner": {"S": self.owner}}
        if published_time is not None:
            update = "SET published_time = :published " + update
            values[":published"] = {"S": salesforce_datetime(published_time)}
        try:
            self.client.update_item(TableName=self.table_name, Key={"id": {"S": KEY_PREFIX + tracking_number}},
                                    UpdateExpression=update, ConditionExpression="lease_owner = :owner",
                                    ExpressionAttributeValues=values)
        except Exception as exc:
            from salesforce_access.observability import logger

            logger.warning("could not release a shipment lease", extra={
                "tracking_number": tracking_number, "error": type(exc).__name__})
