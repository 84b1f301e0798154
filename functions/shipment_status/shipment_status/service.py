"""The ordering rule, free of AWS and HTTP: which changes reach Salesforce, which are published, which are
ignored, for a list of changes (one from an EventBridge invocation, many from a buffered batch).

For each shipment, under a lease that keeps concurrent invocations from interleaving (see `ShipmentLeases`):

1. read the record's ``Status_Updated_At__c``;
2. a change older than it is *stale* and ignored, so an out-of-order delivery never moves a shipment back;
3. a newer change is upserted (all of them in one sObject Collections call), then published as a
   ``Shipment_Status__e`` (all in one call), record first so that a page reloading on the event sees it;
4. a change equal to the record was written by an earlier attempt: it is published only if that attempt
   did not publish it (the lease store remembers the last published status time), otherwise a duplicate.

Delivery to the page is exactly once when every answer arrives, and at least once when a publish was sent
but its answer was lost (`PublishOutcomeUnknown`): platform events cannot be queried or de-duplicated in
Salesforce, so the only way not to lose the update is to publish it again on the retry. Every event
carries the de-duplication key ``Tracking_Number__c`` + ``Status_Time__c``, identical in both copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from shipment_status.models import ShipmentRecord, ShipmentStatusChange

DEFAULT_MAX_CLOCK_SKEW = timedelta(minutes=15)


class Result(StrEnum):
    PUBLISHED = "published"  # record upserted (or already right) and the platform event published
    STALE = "stale"  # older than the record: ignored
    SUPERSEDED = "superseded"  # a newer change of the same shipment came in the same batch
    DUPLICATE = "duplicate"  # already written and published by an earlier delivery
    CONFLICT = "conflict"  # same time as the record but another status: the record is kept
    REJECTED = "rejected"  # permanently refused (a status time in the future, a Salesforce validation error)
    BUSY = "busy"  # another invocation holds the shipment's lease: retry later
    FAILED = "failed"  # Salesforce did not take the record or the event: retry later
    UNKNOWN = "unknown"  # the event was sent, its answer lost: published again by the retry (at least once)


RETRYABLE = frozenset({Result.BUSY, Result.FAILED, Result.UNKNOWN})
PERMANENT_FAILURE = frozenset({Result.REJECTED})


@dataclass(frozen=True)
class Outcome:
    change: ShipmentStatusChange
    result: Result
    detail: str = ""
    event_uuid: str | None = None  # Salesforce's EventUuid of the published event (API 62.0+)


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, change: ShipmentStatusChange, result: Result, detail: str = "",
            event_uuid: str | None = None) -> None:
        self.outcomes.append(Outcome(change, result, detail, event_uuid))

    def of(self, *results: Result) -> list[Outcome]:
        return [o for o in self.outcomes if o.result in results]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.result.value] = counts.get(outcome.result.value, 0) + 1
        return counts

    @property
    def needs_retry(self) -> bool:
        return any(o.result in RETRYABLE for o in self.outcomes)

    @property
    def has_permanent_failures(self) -> bool:
        return any(o.result in PERMANENT_FAILURE for o in self.outcomes)


@dataclass(frozen=True)
class WriteFailure:
    message: str
    permanent: bool


class PublishOutcomeUnknown(Exception):
    """The events were sent but no answer came back: Salesforce may or may not have published them."""


@dataclass(frozen=True)
class PublishResult:
    ok: bool
    event_uuid: str | None = None
    message: str = ""


class Shipments(Protocol):
    """Salesforce, as the service needs it (adapter: salesforce.SalesforceShipments)."""

    def current(self, tracking_numbers: Sequence[str]) -> dict[str, ShipmentRecord]: ...

    def upsert(self, changes: Sequence[ShipmentStatusChange]) -> dict[str, WriteFailure]: ...

    def publish(self, changes: Sequence[ShipmentStatusChange]) -> dict[str, PublishResult]:
        """One result per tracking number; PublishOutcomeUnknown if the answer was lost."""
        ...


@dataclass(frozen=True)
class Lease:
    tracking_number: str
    published_time: datetime | None  # the newest status time this project published for the shipment


class Leases(Protocol):
    """Per-shipment mutual exclusion and publish memory (adapter: leases.DynamoDBLeases)."""

    def acquire(self, tracking_numbers: Iterable[str]) -> dict[str, Lease]: ...

    def release(self, tracking_number: str, published_time: datetime | None = None) -> None: ...


class ShipmentStatusService:
    def __init__(self, shipments: Shipments, leases: Leases, *, clock: Callable[[], datetime] | None = None,
                 max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW):
        self.shipments = shipments
        self.leases = leases
        self.clock = clock or (lambda: datetime.now(UTC))
        self.max_clock_skew = max_clock_skew

    def apply(self, changes: Sequence[ShipmentStatusChange]) -> Report:
        report = Report()
        latest = self._latest_per_shipment(changes, report)
        if not latest:
            return report
        held = self.leases.acquire(latest)
        for tracking_number in latest.keys() - held.keys():
            report.add(latest[tracking_number], Result.BUSY, "another invocation is updating this shipment")
        published: dict[str, datetime] = {}
        try:
            if held:
                self._apply_held([latest[t] for t in latest if t in held], held, report, published)
        finally:
            for tracking_number in held:
                self.leases.release(tracking_number, published.get(tracking_number))
        return report

    def _latest_per_shipment(self, changes: Sequence[ShipmentStatusChange],
                             report: Report) -> dict[str, ShipmentStatusChange]:
        """The newest change per shipment; a future status time would block every later change, so it is refused."""
        horizon = self.clock() + self.max_clock_skew
        latest: dict[str, ShipmentStatusChange] = {}
        for change in changes:
            if change.status_time > horizon:
                report.add(change, Result.REJECTED, "status_time is in the future")
                continue
            kept = latest.get(change.tracking_number)
            if kept is None or change.status_time > kept.status_time:
                if kept is not None:
                    report.add(kept, Result.SUPERSEDED, "a newer change came in the same batch")
                latest[change.tracking_number] = change
            else:
                report.add(change, Result.SUPERSEDED, "a newer change came in the same batch")
        return latest

    def _apply_held(self, changes: list[ShipmentStatusChange], leases: dict[str, Lease], report: Report,
                    published: dict[str, datetime]) -> None:
        current = self.shipments.current([c.tracking_number for c in changes])
        to_write: list[ShipmentStatusChange] = []
        to_publish: list[ShipmentStatusChange] = []
        for change in changes:
            record = current.get(change.tracking_number)
            stored = record.status_updated_at if record else None
            status = record.status if record else None
            if stored is not None and change.status_time < stored:
                report.add(change, Result.STALE, f"the record is at {stored.isoformat()} ({status})")
            elif stored is not None and change.status_time == stored:
                last = leases[change.tracking_number].published_time
                if status != change.status.value:
                    report.add(change, Result.CONFLICT, f"the record has {status} at the same time")
                elif last is not None and last >= change.status_time:
                    report.add(change, Result.DUPLICATE, "already written and published")
                else:
                    to_publish.append(change)  # written by an attempt that failed before publishing
            else:
                to_write.append(change)

        failures = self.shipments.upsert(to_write) if to_write else {}
        for change in to_write:
            failure = failures.get(change.tracking_number)
            if failure is None:
                to_publish.append(change)
            else:
                report.add(change, Result.REJECTED if failure.permanent else Result.FAILED, failure.message)

        try:
            results = self.shipments.publish(to_publish) if to_publish else {}
        except PublishOutcomeUnknown as exc:
            # Not remembered as published, so the retry publishes again: a possible duplicate (same key) is
            # better than a page that never shows the change.
            for change in to_publish:
                report.add(change, Result.UNKNOWN, str(exc))
            return
        for change in to_publish:
            result = results.get(change.tracking_number)
            if result is not None and result.ok:
                published[change.tracking_number] = change.status_time
                report.add(change, Result.PUBLISHED, event_uuid=result.event_uuid)
            else:
                # The record is right; the event is published again on the retry (step 4 above).
                report.add(change, Result.FAILED, result.message if result else "no publish result")
