"""Run state in the DynamoDB state table: the run lock, the watermarks, the run and its checkpoint.

Items (partition key ``id``):

- ``customer-sync#lock``: the run that may write now, until ``expires_at``: the last heartbeat of its worker
  plus the lease (``SYNC_LOCK_TTL_SECONDS``), so a crashed run's lock lapses minutes after its last beat;
- ``customer-sync#watermarks``: ``salesforce`` (SystemModstamp) and ``erp`` (updated_at) of the last
  window synced completely;
- ``customer-sync#current``: the unfinished run, which the next start resumes instead of starting afresh;
- ``customer-sync#run#<run_id>``: the run: status, step, the claiming invocation's token and lease (renewed by
  its heartbeat), and the JSON checkpoint.

Every transition is a conditional write, so two invocations can never both believe they own a run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PREFIX = "customer-sync"
LOCK_ID = f"{PREFIX}#lock"
WATERMARKS_ID = f"{PREFIX}#watermarks"
CURRENT_ID = f"{PREFIX}#current"
RETENTION_SECONDS = 90 * 24 * 3600  # finished run items expire (TTL) after this


def run_item_id(run_id: str) -> str:
    return f"{PREFIX}#run#{run_id}"


@dataclass
class RunState:
    """Everything a later invocation needs to continue the run exactly where the last one stopped."""

    run_id: str
    mode: str  # incremental | full | backfill
    started_at: str
    integration_user_id: str
    window: dict[str, str | None]  # salesforce_from/to, erp_from/to (watermark bounds of this run)
    phase: int = 0
    checkpoint: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    report_parts: int = 0
    invocations: int = 0
    elapsed_seconds: float = 0.0
    status: str = "queued"  # queued | running | paused | completed
    step: int = 0
    pause_reason: str | None = None

    def count(self, name: str, value: int = 1) -> None:
        if value:
            self.counters[name] = self.counters.get(name, 0) + value

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunState:
        return cls(**json.loads(text))


class LockHeld(Exception):
    """Another run holds the lock."""

    def __init__(self, owner: str, expires_at: int):
        super().__init__(f"run {owner} holds the sync lock until {expires_at}")
        self.owner, self.expires_at = owner, expires_at


class NotClaimed(Exception):
    """This message's step was already taken by another invocation (a duplicate delivery)."""


class LeaseLost(Exception):
    """This invocation no longer owns its step: its lease lapsed and another invocation took the run over."""


@dataclass(frozen=True)
class Claim:
    """A step taken by one invocation: its token guards every later write of that invocation; `recovered` holds
    the last heartbeat of a crashed invocation whose step this claim took over (None for a queued step)."""

    run: RunState
    token: str
    recovered: int | None = None


class StateStore:
    def __init__(self, client: DynamoDBClient, table: str, lease_seconds: int = 300,
                 clock: Callable[[], float] = time.time):
        self.db = client
        self.table = table
        self.lease_seconds = lease_seconds  # renewed by the worker's heartbeat: a live worker never loses its lease
        self.clock = clock

    # -- lock ---------------------------------------------------------------------------------------

    def acquire_lock(self, run_id: str, ttl_seconds: int) -> None:
        """Take the lock for `run_id` (or extend it); LockHeld if another run holds an unexpired one."""
        now = int(self.clock())
        try:
            self.db.put_item(
                TableName=self.table,
                Item={"id": {"S": LOCK_ID}, "owner": {"S": run_id}, "expires_at": {"N": str(now + ttl_seconds)},
                      "heartbeat_at": {"N": str(now)}, "expiration": {"N": str(now + ttl_seconds + 86400)}},
                ConditionExpression="attribute_not_exists(id) OR expires_at < :now OR #o = :run",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":run": {"S": run_id}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            held = self.db.get_item(TableName=self.table, Key={"id": {"S": LOCK_ID}}, ConsistentRead=True).get("Item")
            if held is None:  # released in between: try once more
                return self.acquire_lock(run_id, ttl_seconds)
            raise LockHeld(held["owner"]["S"], int(held["expires_at"]["N"])) from None
        return None

    def lock_holder(self) -> tuple[str, int] | None:
        """(run id, expires_at) of an unexpired lock, or None."""
        item = self.db.get_item(TableName=self.table, Key={"id": {"S": LOCK_ID}}, ConsistentRead=True).get("Item")
        if item is None or int(item["expires_at"]["N"]) < int(self.clock()):
            return None
        return item["owner"]["S"], int(item["expires_at"]["N"])

    def release_lock(self, run_id: str) -> None:
        try:
            self.db.delete_item(TableName=self.table, Key={"id": {"S": LOCK_ID}},
                                ConditionExpression="#o = :run", ExpressionAttributeNames={"#o": "owner"},
                                ExpressionAttributeValues={":run": {"S": run_id}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def heartbeat(self, run_id: str, token: str) -> None:
        """The worker is alive: its step's lease and the run lock last another `lease_seconds` from now.
        LeaseLost if the step is no longer this invocation's (its lease lapsed and another took it over)."""
        now = int(self.clock())
        values = {":now": {"N": str(now)}, ":until": {"N": str(now + self.lease_seconds)}}
        try:
            self.db.update_item(
                TableName=self.table, Key={"id": {"S": run_item_id(run_id)}},
                UpdateExpression="SET lease_until = :until, heartbeat_at = :now",
                ConditionExpression="claim_token = :token AND #st = :running",
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues=values | {":token": {"S": token}, ":running": {"S": "running"}})
            self.db.update_item(
                TableName=self.table, Key={"id": {"S": LOCK_ID}},
                UpdateExpression="SET expires_at = :until, heartbeat_at = :now, expiration = :expiration",
                ConditionExpression="#o = :run", ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues=values | {":run": {"S": run_id},
                                                    ":expiration": {"N": str(now + self.lease_seconds + 86400)}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise LeaseLost(f"run {run_id}: this invocation's step was taken over") from None
            raise

    def last_heartbeat(self, run_id: str) -> int | None:
        """When the run's last worker last showed it was alive (None if no worker ever claimed a step)."""
        item = self.db.get_item(TableName=self.table, Key={"id": {"S": run_item_id(run_id)}},
                                ConsistentRead=True).get("Item") or {}
        return int(item["heartbeat_at"]["N"]) if "heartbeat_at" in item else None

    # -- watermarks ---------------------------------------------------------------------------------

    def watermarks(self) -> dict[str, str | None]:
        item = self.db.get_item(TableName=self.table, Key={"id": {"S": WATERMARKS_ID}}, ConsistentRead=True).get("Item")
        item = item or {}
        return {side: item[side]["S"] if side in item else None for side in ("salesforce", "erp")}

    def advance_watermark(self, side: str, window_from: str | None, new: str, run_id: str) -> bool:
        """Move `side` to `new` if it is still inside this run's window (a newer run or a backfill may have
        moved it) and this run holds the lock; False, with nothing written, otherwise."""
        condition = "attribute_not_exists(#s) OR #s <= :new"
        values: dict[str, Any] = {":new": {"S": new}}
        if window_from is not None:
            condition = "attribute_not_exists(#s) OR (#s >= :from AND #s <= :new)"
            values[":from"] = {"S": window_from}
        try:
            self.db.transact_write_items(TransactItems=[
                {"ConditionCheck": {"TableName": self.table, "Key": {"id": {"S": LOCK_ID}},
                                    "ConditionExpression": "#o = :run", "ExpressionAttributeNames": {"#o": "owner"},
                                    "ExpressionAttributeValues": {":run": {"S": run_id}}}},
                {"Update": {"TableName": self.table, "Key": {"id": {"S": WATERMARKS_ID}},
                            "UpdateExpression": "SET #s = :new, last_run = :run", "ConditionExpression": condition,
                            "ExpressionAttributeNames": {"#s": side},
                            "ExpressionAttributeValues": values | {":run": {"S": run_id}}}},
            ])
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("TransactionCanceledException", "ConditionalCheckFailedException"):
                return False
            raise
        return True

    # -- runs ---------------------------------------------------------------------------------------

    def current_run_id(self) -> str | None:
        item = self.db.get_item(TableName=self.table, Key={"id": {"S": CURRENT_ID}}, ConsistentRead=True).get("Item")
        return item["run_id"]["S"] if item else None

    def create_run(self, run: RunState) -> None:
        """The run item and the `current` pointer, together; fails if another unfinished run exists."""
        self.db.transact_write_items(TransactItems=[
            {"Put": {"TableName": self.table, "Item": self._run_item(run),
                     "ConditionExpression": "attribute_not_exists(id)"}},
            {"Put": {"TableName": self.table, "Item": {"id": {"S": CURRENT_ID}, "run_id": {"S": run.run_id}},
                     "ConditionExpression": "attribute_not_exists(id)"}},
        ])

    def load_run(self, run_id: str) -> RunState | None:
        item = self.db.get_item(TableName=self.table, Key={"id": {"S": run_item_id(run_id)}},
                                ConsistentRead=True).get("Item")
        return RunState.from_json(item["state"]["S"]) if item else None

    def claim(self, run_id: str, step: int) -> Claim:
        """Take step `step` of the run for this invocation: the run must be queued at that step, or running
        it under a lapsed lease (the invocation that took it died: no heartbeat for `lease_seconds`).
        NotClaimed otherwise."""
        now, token = int(self.clock()), uuid.uuid4().hex
        try:
            old = self.db.update_item(
                TableName=self.table, Key={"id": {"S": run_item_id(run_id)}},
                UpdateExpression="SET #st = :running, lease_until = :lease, heartbeat_at = :now, claim_token = :token",
                ConditionExpression="step = :step AND (#st = :queued OR (#st = :running AND lease_until < :now))",
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues={":running": {"S": "running"}, ":queued": {"S": "queued"},
                                           ":step": {"N": str(step)}, ":now": {"N": str(now)},
                                           ":lease": {"N": str(now + self.lease_seconds)}, ":token": {"S": token}},
                ReturnValues="ALL_OLD",
            ).get("Attributes", {})
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise NotClaimed(f"run {run_id} step {step} is not waiting for a worker") from None
            raise
        run = self.load_run(run_id)
        if run is None:  # pragma: no cover - the update above proved it exists
            raise NotClaimed(f"run {run_id} vanished")
        run.status = "running"
        recovered = None
        if old.get("status", {}).get("S") == "running":  # a crashed invocation's step, taken over
            recovered = int(old.get("heartbeat_at", old.get("lease_until", {"N": "0"}))["N"])
        return Claim(run, token, recovered)

    def save(self, run: RunState, token: str) -> None:
        """Persist progress of a run this invocation owns (its claim, running at the same step). The lease is the
        heartbeat's alone (renewed with the lock, so a lapsed lock always means a lapsed lease). LeaseLost if
        another invocation took the step over."""
        try:
            self.db.update_item(
                TableName=self.table, Key={"id": {"S": run_item_id(run.run_id)}},
                UpdateExpression="SET #state = :state",
                ConditionExpression="claim_token = :token AND step = :step AND #st = :running",
                ExpressionAttributeNames={"#st": "status", "#state": "state"},
                ExpressionAttributeValues={":state": {"S": run.to_json()}, ":token": {"S": token},
                                           ":step": {"N": str(run.step)}, ":running": {"S": "running"}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise LeaseLost(f"run {run.run_id}: step {run.step} was taken over by another invocation") from None
            raise

    def hand_over(self, run: RunState, status: str, token: str) -> None:
        """End this invocation's ownership: queued for the next step, paused or completed."""
        previous = run.step
        if status == "queued":
            run.step += 1
        run.status = status
        self._put_owned(self._run_item(run), previous, token)
        if status == "completed":
            self.db.delete_item(TableName=self.table, Key={"id": {"S": CURRENT_ID}},
                                ConditionExpression="run_id = :run",
                                ExpressionAttributeValues={":run": {"S": run.run_id}})

    def _put_owned(self, item: dict[str, Any], step: int, token: str) -> None:
        try:
            self.db.put_item(TableName=self.table, Item=item,
                             ConditionExpression="claim_token = :token AND step = :step AND #st = :running",
                             ExpressionAttributeNames={"#st": "status"},
                             ExpressionAttributeValues={":step": {"N": str(step)}, ":running": {"S": "running"},
                                                        ":token": {"S": token}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise LeaseLost(f"run {item['id']['S']}: step {step} was taken over by another invocation") from None
            raise

    def requeue(self, run: RunState) -> bool:
        """The starter resumes an unfinished run (paused, or abandoned by a dead worker whose lease lapsed): queued
        at the next step, so messages of the old step claim nothing. False if another start (or a redelivered
        step message) took the run first: the condition on the old step and its lease lets only one win."""
        previous = run.step
        run.step += 1
        run.status = "queued"
        run.pause_reason = None
        try:
            self.db.put_item(TableName=self.table, Item=self._run_item(run),
                             ConditionExpression="step = :step AND #st <> :completed AND (#st = :paused OR "
                                                 "attribute_not_exists(lease_until) OR lease_until < :now)",
                             ExpressionAttributeNames={"#st": "status"},
                             ExpressionAttributeValues={":step": {"N": str(previous)},
                                                        ":completed": {"S": "completed"}, ":paused": {"S": "paused"},
                                                        ":now": {"N": str(int(self.clock()))}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _run_item(self, run: RunState) -> dict[str, Any]:
        """The item of a run no invocation owns (queued, paused, completed): no claim, no lease."""
        item = {"id": {"S": run_item_id(run.run_id)}, "status": {"S": run.status}, "step": {"N": str(run.step)},
                "state": {"S": run.to_json()}}
        now = int(self.clock())
        if run.status == "completed":
            item["expiration"] = {"N": str(now + RETENTION_SECONDS)}
        return item
