"""The order ledger: for each order number, the fingerprint and Salesforce ids of the version last written.

It lives in the stack's state table (item ``id`` = ``order#<order number, lower case>``). It is what makes a
replay cost nothing: the same order again is answered from here, with the same ids, without calling
Salesforce. It is shared by the API and the SQS worker, so an order sent both ways is written once.

Written by hand rather than with Powertools idempotency because the key is the business key, not the
request: a replay must be told apart from a *changed* order with the same number (which must be written,
replacing the lines recorded here), the answer differs (200 instead of the first call's 201), and the worker
checks and records a whole batch of orders around one Salesforce call, where Powertools wraps one function
call per key.

The ledger is an optimisation with a safety net, not the source of truth: if it is unreadable, or its record
is lost or expired, the order is written again; Salesforce's unique order number makes that an update of
the same Order, never a second one.

Writers of one order are serialised by a *claim* on its item (``claim_owner``, ``claim_expires``): a writer
claims the order with a conditional write before calling Salesforce, and a second writer that finds a live
claim does not write (two concurrent creates would each insert the lines). Recording the written version
replaces the whole item, which releases the claim; a writer that fails releases it; a crashed writer's claim
lapses at ``claim_expires`` (its invocation's remaining time plus a margin).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

KEY_PREFIX = "order#"
AWS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 3})
LedgerUnavailable = (BotoCoreError, ClientError)


@dataclass(frozen=True)
class LedgerEntry:
    order_number: str
    fingerprint: str
    account_id: str
    order_id: str
    item_ids: tuple[str, ...]
    updated_at: str | None = None  # the order's updated_at (UTC ISO 8601), when the platform sends it

    def ids(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "order_id": self.order_id, "order_item_ids": list(self.item_ids)}


def _key(order_number: str) -> str:
    return KEY_PREFIX + order_number.lower()


def _entry(item: dict[str, Any]) -> LedgerEntry | None:
    if "fingerprint" not in item:  # only a claim: no version written yet
        return None
    return LedgerEntry(order_number=item["order_number"], fingerprint=item["fingerprint"],
                       account_id=item["account_id"], order_id=item["order_id"],
                       item_ids=tuple(item.get("item_ids") or ()), updated_at=item.get("updated_at"))


class OrderLedger:
    def __init__(self, table_name: str, ttl_days: int = 400, resource: Any = None):
        self.table_name = table_name
        self.ttl_seconds = ttl_days * 86400
        self._resource = resource

    @property
    def table(self) -> Any:
        if self._resource is None:
            self._resource = boto3.resource("dynamodb", config=AWS_CONFIG)
        return self._resource.Table(self.table_name)

    def get(self, order_number: str) -> LedgerEntry | None:
        item = self.table.get_item(Key={"id": _key(order_number)}, ConsistentRead=True).get("Item")
        return _entry(item) if item else None

    def claim(self, order_number: str, owner: str, now: float, expires: float) -> tuple[bool, LedgerEntry | None]:
        """Claim the order for `owner` unless another live claim holds it; (claimed, the entry now recorded)."""
        try:
            response = self.table.update_item(
                Key={"id": _key(order_number)},
                UpdateExpression="SET claim_owner = :owner, claim_expires = :expires",
                ConditionExpression=(Attr("claim_owner").not_exists() | Attr("claim_expires").lt(int(now))
                                     | Attr("claim_owner").eq(owner)),
                ExpressionAttributeValues={":owner": owner, ":expires": int(expires) + 1},
                ReturnValues="ALL_OLD")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False, None
        old = response.get("Attributes")
        return True, _entry(old) if old else None

    def release(self, order_number: str, owner: str) -> None:
        """Drop `owner`'s claim (a no-op if it lapsed and someone else holds the order now)."""
        try:
            self.table.update_item(Key={"id": _key(order_number)}, UpdateExpression="REMOVE claim_owner, claim_expires",
                                   ConditionExpression=Attr("claim_owner").eq(owner))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def get_many(self, order_numbers: Sequence[str]) -> dict[str, LedgerEntry]:
        """Entries by lower-case order number (BatchGetItem, 100 keys per call, unprocessed keys retried)."""
        found: dict[str, LedgerEntry] = {}
        keys = list(dict.fromkeys(_key(n) for n in order_numbers))
        client = self.table.meta.client
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {self.table_name: {"Keys": [{"id": k} for k in keys[start:start + 100]],
                                                         "ConsistentRead": True}}
            for attempt in range(5):
                response = client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    entry = _entry(item)
                    if entry is None:
                        continue
                    found[entry.order_number.lower()] = entry
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
        return found

    def put(self, entry: LedgerEntry) -> None:
        """Record a written version; a version older (by updated_at) than the recorded one does not replace it."""
        item = self._item(entry)
        condition = None
        if entry.updated_at:
            condition = (Attr("id").not_exists() | Attr("updated_at").not_exists()
                         | Attr("updated_at").lte(entry.updated_at))
        try:
            if condition is None:
                self.table.put_item(Item=item)
            else:
                self.table.put_item(Item=item, ConditionExpression=condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def put_many(self, entries: Iterable[LedgerEntry]) -> None:
        """Versioned entries one by one (a conditional put cannot be batched), the others 25 per call."""
        plain = []
        for entry in entries:
            if entry.updated_at:
                self.put(entry)
            else:
                plain.append(entry)
        if plain:
            with self.table.batch_writer(overwrite_by_pkeys=["id"]) as batch:
                for entry in plain:
                    batch.put_item(Item=self._item(entry))

    def _item(self, entry: LedgerEntry) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": _key(entry.order_number), "order_number": entry.order_number, "fingerprint": entry.fingerprint,
            "account_id": entry.account_id, "order_id": entry.order_id, "item_ids": list(entry.item_ids),
            "written_at": int(time.time()), "expiration": int(time.time()) + self.ttl_seconds,
        }
        if entry.updated_at:
            item["updated_at"] = entry.updated_at
        return item
