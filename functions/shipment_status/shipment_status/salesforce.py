"""Adapter: Shipment__c and Shipment_Status__e through the shared layer, a fixed number of API calls per
batch whatever its size (up to 200 shipments): one query, one sObject Collections upsert, one sObject
Collections create of the platform events. Transient Salesforce failures (503, an expired session that
re-authentication could not fix, the request limit) propagate as the layer's typed errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shipment_status.models import ShipmentRecord, ShipmentStatusChange, order_link_fields
from shipment_status.service import PublishOutcomeUnknown, PublishResult, ShipmentWrite, WriteFailure

if TYPE_CHECKING:
    from salesforce_access import RecordResult, SalesforceAccess

SHIPMENT = "Shipment__c"
EXTERNAL_ID = "Tracking_Number__c"
EVENT = "Shipment_Status__e"
CHUNK = 200  # tracking numbers per query: keeps the SOQL well under its length limit
ENQUEUED = "OPERATION_ENQUEUED"
GATEWAY_STATUSES = frozenset({502, 504})  # a gateway may have forwarded the request before failing
# Per-record codes that a retry can fix (the record was locked, the org was busy); others are permanent.
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED",
                             "ALL_OR_NONE_OPERATION_ROLLED_BACK", "PROCESSING_HALTED"})


def judge_publish(result: RecordResult) -> PublishResult:
    """A publish result read correctly: from API 62.0 a successful publish lists ``OPERATION_ENQUEUED``
    (message = the event's EventUuid) in ``errors``; only ``success`` says whether it failed."""
    enqueued = [e for e in result.errors if e.status_code == ENQUEUED]
    others = [e for e in result.errors if e.status_code != ENQUEUED]
    event_uuid = enqueued[0].message if enqueued else None
    if result.success:
        return PublishResult(True, event_uuid)
    text = "; ".join(f"{e.status_code}: {e.message}" for e in others) or "publish failed without an error"
    return PublishResult(False, event_uuid, text)


def _failure(result: RecordResult) -> WriteFailure:
    codes = {e.status_code for e in result.errors}
    text = "; ".join(f"{e.status_code}: {e.message}" + (f" ({', '.join(e.fields)})" if e.fields else "")
                     for e in result.errors) or "refused without an error"
    return WriteFailure(text, permanent=not codes or not codes <= TRANSIENT_CODES)


def _unknown_order(result: RecordResult) -> bool:
    """Salesforce could not resolve Order__r by its external id: the order is not (yet) in Salesforce."""
    return any(e.status_code == "INVALID_FIELD" and "Foreign key external ID" in e.message for e in result.errors)


def _fields(write: ShipmentWrite) -> dict[str, Any]:
    if write.change is not None:
        return write.change.shipment_fields(write.order_number)
    return order_link_fields(write.tracking_number, write.order_number or "")  # link-only: the service names one


class SalesforceShipments:
    def __init__(self, access: SalesforceAccess):
        self.access = access

    def current(self, tracking_numbers: Sequence[str]) -> dict[str, ShipmentRecord]:
        from salesforce_access import soql

        records: dict[str, ShipmentRecord] = {}
        for start in range(0, len(tracking_numbers), CHUNK):
            query = soql("SELECT Id, Tracking_Number__c, Status__c, Status_Updated_At__c, Order__c, "
                         "Order__r.Ecommerce_Order_Number__c FROM Shipment__c WHERE Tracking_Number__c IN {numbers}",
                         numbers=list(tracking_numbers[start:start + CHUNK]))
            for row in self.access.query(query):
                record = ShipmentRecord.model_validate(row)
                records[record.tracking_number.upper()] = record
        return records

    def upsert(self, writes: Sequence[ShipmentWrite]) -> dict[str, WriteFailure]:
        """Upsert by Tracking_Number__c (a PATCH: safe for the layer to retry), status writes and link-only writes
        in one call. A status whose order is not in Salesforce yet is written again without the Order__c link
        rather than lost; a link-only write whose order is unknown has nothing else to write."""
        results = self.access.collections.upsert(SHIPMENT, EXTERNAL_ID, [_fields(w) for w in writes])
        failures: dict[str, WriteFailure] = {}
        unlinked: list[ShipmentWrite] = []
        for write, result in zip(writes, results, strict=True):
            if result.success:
                continue
            if write.order_number and _unknown_order(result):
                if write.change is not None:
                    unlinked.append(write)
                    continue
                failures[write.tracking_number] = WriteFailure(
                    f"order {write.order_number} is not in Salesforce yet: not linked", permanent=True,
                    order_unknown=True)
            else:
                failures[write.tracking_number] = _failure(result)
        if unlinked:
            retried = self.access.collections.upsert(
                SHIPMENT, EXTERNAL_ID, [_fields(ShipmentWrite(w.tracking_number, w.change)) for w in unlinked])
            for write, result in zip(unlinked, retried, strict=True):
                if not result.success:
                    failures[write.tracking_number] = _failure(result)
        return failures

    def publish(self, changes: Sequence[ShipmentStatusChange],
                order_numbers: Mapping[str, str] | None = None) -> dict[str, PublishResult]:
        """All events in one sObject Collections create (up to 200 per call), each judged on its own.

        A create is never replayed by the layer: a timeout or a dropped connection after sending (OutcomeUnknown),
        or a gateway error, leaves it unknown whether the events went out (PublishOutcomeUnknown).
        """
        from salesforce_access import OutcomeUnknown, ServiceUnavailable

        try:
            results = self.access.collections.create(
                EVENT, [c.event_fields((order_numbers or {}).get(c.tracking_number)) for c in changes])
        except OutcomeUnknown as exc:
            raise PublishOutcomeUnknown(f"no answer to the publish ({type(exc).__name__})") from exc
        except ServiceUnavailable as exc:
            if exc.status not in GATEWAY_STATUSES:
                raise
            raise PublishOutcomeUnknown(f"gateway error {exc.status} on the publish") from exc
        return {c.tracking_number: judge_publish(r) for c, r in zip(changes, results, strict=True)}
