"""The ordering rule, free of AWS and HTTP: which changes reach Salesforce, which are published, which are
ignored, for a list of changes (one from an EventBridge invocation, many from a buffered batch).

For each shipment, under a lease that keeps concurrent invocations from interleaving (see `ShipmentLeases`):

1. read the record's ``Status_Updated_At__c``;
2. a change older than it is *stale* and ignored, so an out-of-order delivery never moves a shipment back;
3. a newer change is upserted (all of them in one sObject Collections call), then published as a
   ``Shipment_Status__e`` (all in one call), record first so that a page reloading on the event sees it;
4. a change equal to the record was written by an earlier attempt: it is published only if that attempt
   did not publish it (the lease store remembers the last published status time), otherwise a duplicate.

The order link is a fact, not a status, so it does not follow the ordering rule: a record without an order is
linked to the first order number any change of the shipment carries (in status-time order within a batch),
whether that change is newer, stale, superseded or a duplicate. A newer change carries the link in its upsert
(no extra call); a change that is not written otherwise costs one link-only write (``linked``), never a
publish. A record already linked keeps its order: another number is an `OrderConflict` (logged and counted by
the application), never a silent move of the shipment to another order.

Delivery to the page is exactly once when every answer arrives, and at least once when a publish was sent
but its answer was lost (`PublishOutcomeUnknown`): platform events cannot be queried or de-duplicated in
Salesforce, so the only way not to lose the update is to publish it again on the retry. Every event
carries the de-duplication key ``Tracking_Number__c`` + ``Status_Time__c``, identical in both copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from shipment_status.models import ShipmentRecord, ShipmentStatusChange, same_order_number

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
    LINKED = "linked"  # not written as a status (stale, duplicate, conflict), but its order link was


RETRYABLE = frozenset({Result.BUSY, Result.FAILED, Result.UNKNOWN})
PERMANENT_FAILURE = frozenset({Result.REJECTED})


@dataclass(frozen=True)
class Outcome:
    change: ShipmentStatusChange
    result: Result
    detail: str = ""
    event_uuid: str | None = None  # Salesforce's EventUuid of the published event (API 62.0+)


@dataclass(frozen=True)
class OrderConflict:
    """A change named another order than the one the shipment is (or is being) linked to: the link is kept."""

    tracking_number: str
    order_number: str  # what the change carried
    linked_order_number: str | None  # the kept link's number (None: an Order without an e-commerce number)


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    order_conflicts: list[OrderConflict] = field(default_factory=list)

    def add(self, change: ShipmentStatusChange, result: Result, detail: str = "",
            event_uuid: str | None = None) -> None:
        self.outcomes.append(Outcome(change, result, detail, event_uuid))

    def result_of(self, change: ShipmentStatusChange) -> Result | None:
        return next((o.result for o in self.outcomes if o.change is change), None)

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
    order_unknown: bool = False  # a link-only write whose order is not in Salesforce (yet): nothing to retry


@dataclass(frozen=True)
class ShipmentWrite:
    """One record of the upsert: a change's status (with the order link when decided), or only the link."""

    tracking_number: str
    change: ShipmentStatusChange | None  # None: only the order link (the change is older than the record)
    order_number: str | None = None  # the order to link; only set when the record has none


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

    def upsert(self, writes: Sequence[ShipmentWrite]) -> dict[str, WriteFailure]: ...

    def publish(self, changes: Sequence[ShipmentStatusChange],
                order_numbers: Mapping[str, str] | None = None) -> dict[str, PublishResult]:
        """One result per tracking number; PublishOutcomeUnknown if the answer was lost. `order_numbers`: the
        shipment's order per tracking number, for the events whose change did not carry it."""
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
        latest, superseded = self._latest_per_shipment(changes, report)
        offered: dict[str, list[ShipmentStatusChange]] = {}  # every change of each shipment that may link it
        for change in [*latest.values(), *superseded]:
            offered.setdefault(change.tracking_number, []).append(change)
        if not latest:
            return report
        held = self.leases.acquire(latest)
        for tracking_number in latest.keys() - held.keys():
            report.add(latest[tracking_number], Result.BUSY, "another invocation is updating this shipment")
        published: dict[str, datetime] = {}
        try:
            if held:
                self._apply_held([latest[t] for t in latest if t in held], held, report, published, offered)
        finally:
            for tracking_number in held:
                self.leases.release(tracking_number, published.get(tracking_number))
        self._settle_superseded(latest, superseded, report)
        return report

    def _latest_per_shipment(self, changes: Sequence[ShipmentStatusChange], report: Report,
                             ) -> tuple[dict[str, ShipmentStatusChange], list[ShipmentStatusChange]]:
        """The newest change per shipment, and the older ones of the batch (reported once the newest is
        settled); a future status time would block every later change, so it is refused."""
        horizon = self.clock() + self.max_clock_skew
        latest: dict[str, ShipmentStatusChange] = {}
        superseded: list[ShipmentStatusChange] = []
        for change in changes:
            if change.status_time > horizon:
                report.add(change, Result.REJECTED, "status_time is in the future")
                continue
            kept = latest.get(change.tracking_number)
            if kept is None or change.status_time > kept.status_time:
                if kept is not None:
                    superseded.append(kept)
                latest[change.tracking_number] = change
            else:
                superseded.append(change)
        return latest, superseded

    @staticmethod
    def _settle_superseded(latest: dict[str, ShipmentStatusChange], superseded: list[ShipmentStatusChange],
                           report: Report) -> None:
        """An older change of the batch shares the newest one's failure when it carried an order number: its
        link was to be written with that record, so its message must come back too (in the SQS variant)."""
        for change in superseded:
            fate = report.result_of(latest[change.tracking_number])
            if change.order_number and fate in (Result.BUSY, Result.FAILED, Result.REJECTED):
                report.add(change, fate, "its order link was to be written with a newer change that failed")
            else:
                report.add(change, Result.SUPERSEDED, "a newer change came in the same batch")

    def _order_link(self, tracking_number: str, record: ShipmentRecord | None,
                    offered: list[ShipmentStatusChange], report: Report) -> str | None:
        """The order number to link now, if any: the record's link is kept; else the first number carried, in
        status-time order (as if the batch had arrived in order). Every other number is a conflict."""
        numbers: list[str] = []
        for change in sorted(offered, key=lambda c: c.status_time):
            if change.order_number and not any(same_order_number(change.order_number, n) for n in numbers):
                numbers.append(change.order_number)
        if record is not None and record.linked:
            kept, link = record.order_number, None
            others = [n for n in numbers if kept is None or not same_order_number(n, kept)]
        elif numbers:
            kept, link, others = numbers[0], numbers[0], numbers[1:]
        else:
            return None
        report.order_conflicts.extend(OrderConflict(tracking_number, n, kept) for n in others)
        return link

    def _apply_held(self, changes: list[ShipmentStatusChange], leases: dict[str, Lease], report: Report,
                    published: dict[str, datetime], offered: dict[str, list[ShipmentStatusChange]]) -> None:
        current = self.shipments.current([c.tracking_number for c in changes])
        writes: list[ShipmentWrite] = []
        to_publish: list[ShipmentStatusChange] = []
        ignored: dict[str, tuple[ShipmentStatusChange, Result, str]] = {}  # not written as a status
        order_numbers: dict[str, str] = {}  # the shipment's order, for the events
        for change in changes:
            tracking_number = change.tracking_number
            record = current.get(tracking_number)
            link = self._order_link(tracking_number, record, offered.get(tracking_number, [change]), report)
            known = (record.order_number if record is not None and record.linked else link) or change.order_number
            if known:
                order_numbers[tracking_number] = known
            stored = record.status_updated_at if record else None
            status = record.status if record else None
            if stored is not None and change.status_time < stored:
                ignored[tracking_number] = (change, Result.STALE,
                                            f"the record is at {stored.isoformat()} ({status})")
            elif stored is not None and change.status_time == stored:
                last = leases[tracking_number].published_time
                if status != change.status.value:
                    ignored[tracking_number] = (change, Result.CONFLICT, f"the record has {status} at the same time")
                elif last is not None and last >= change.status_time:
                    ignored[tracking_number] = (change, Result.DUPLICATE, "already written and published")
                else:
                    to_publish.append(change)  # written by an attempt that failed before publishing
            else:
                writes.append(ShipmentWrite(tracking_number, change, link))
                continue
            if link:
                writes.append(ShipmentWrite(tracking_number, None, link))

        failures = self.shipments.upsert(writes) if writes else {}
        link_failures: dict[str, WriteFailure] = {}
        for write in writes:
            failure = failures.get(write.tracking_number)
            if write.change is None:
                if failure is not None:
                    link_failures[write.tracking_number] = failure
            elif failure is None:
                to_publish.append(write.change)
            else:
                report.add(write.change, Result.REJECTED if failure.permanent else Result.FAILED, failure.message)
        for tracking_number, (change, ignored_as, detail) in ignored.items():
            report.add(change, *self._with_link(tracking_number, ignored_as, detail, writes, link_failures))

        try:
            results = self.shipments.publish(to_publish, order_numbers) if to_publish else {}
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
                outcome, detail = self._with_link(change.tracking_number, Result.PUBLISHED, "", [], link_failures)
                report.add(change, outcome, detail, event_uuid=result.event_uuid)
            else:
                # The record is right; the event is published again on the retry (step 4 above).
                report.add(change, Result.FAILED, result.message if result else "no publish result")

    @staticmethod
    def _with_link(tracking_number: str, result: Result, detail: str, writes: list[ShipmentWrite],
                   link_failures: dict[str, WriteFailure]) -> tuple[Result, str]:
        """The outcome of a change that was not written as a status, once its link-only write is known."""
        failure = link_failures.get(tracking_number)
        if failure is not None and failure.order_unknown:
            return result, "; ".join(filter(None, [detail, failure.message]))
        if failure is not None:  # a retry (or the DLQ) must keep the change, or its link would be lost
            return (Result.REJECTED if failure.permanent else Result.FAILED), f"the order link: {failure.message}"
        if any(w.tracking_number == tracking_number and w.change is None for w in writes):
            return Result.LINKED, "; ".join(filter(None, [detail, "the order link written"]))
        return result, detail
