"""Adapter: Shipment__c and Shipment_Status__e through the shared layer, a fixed number of API calls per
batch whatever its size (up to 200 shipments): one query, one sObject Collections upsert, one sObject
Collections create of the platform events. Transient Salesforce failures (503, an expired session that
re-authentication could not fix, the request limit) propagate as the layer's typed errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shipment_status.models import ShipmentRecord, ShipmentStatusChange
from shipment_status.service import PublishOutcomeUnknown, PublishResult, WriteFailure

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


class SalesforceShipments:
    def __init__(self, access: SalesforceAccess):
        self.access = access

    def current(self, tracking_numbers: Sequence[str]) -> dict[str, ShipmentRecord]:
        from salesforce_access import soql

        records: dict[str, ShipmentRecord] = {}
        for start in range(0, len(tracking_numbers), CHUNK):
            query = soql("SELECT Id, Tracking_Number__c, Status__c, Status_Updated_At__c FROM Shipment__c "
                         "WHERE Tracking_Number__c IN {numbers}", numbers=list(tracking_numbers[start:start + CHUNK]))
            for row in self.access.query(query):
                record = ShipmentRecord.model_validate(row)
                records[record.tracking_number.upper()] = record
        return records

    def upsert(self, changes: Sequence[ShipmentStatusChange]) -> dict[str, WriteFailure]:
        """Upsert by Tracking_Number__c (a PATCH: safe for the layer to retry). A shipment whose order is not
        in Salesforce yet is written without the Order__c link rather than lost."""
        results = self.access.collections.upsert(SHIPMENT, EXTERNAL_ID, [c.shipment_fields() for c in changes])
        unlinked = [c for c, r in zip(changes, results, strict=True) if not r.success and _unknown_order(r)]
        failures = {c.tracking_number: _failure(r) for c, r in zip(changes, results, strict=True) if not r.success}
        if unlinked:
            retried = self.access.collections.upsert(
                SHIPMENT, EXTERNAL_ID, [c.shipment_fields(link_order=False) for c in unlinked])
            for change, result in zip(unlinked, retried, strict=True):
                if result.success:
                    failures.pop(change.tracking_number, None)
                else:
                    failures[change.tracking_number] = _failure(result)
        return failures

    def publish(self, changes: Sequence[ShipmentStatusChange]) -> dict[str, PublishResult]:
        """All events in one sObject Collections create (up to 200 per call), each judged on its own.

        A create is never replayed by the layer: a timeout or a dropped connection after sending (OutcomeUnknown),
        or a gateway error, leaves it unknown whether the events went out (PublishOutcomeUnknown).
        """
        from salesforce_access import OutcomeUnknown, ServiceUnavailable

        try:
            results = self.access.collections.create(EVENT, [c.event_fields() for c in changes])
        except OutcomeUnknown as exc:
            raise PublishOutcomeUnknown(f"no answer to the publish ({type(exc).__name__})") from exc
        except ServiceUnavailable as exc:
            if exc.status not in GATEWAY_STATUSES:
                raise
            raise PublishOutcomeUnknown(f"gateway error {exc.status} on the publish") from exc
        return {c.tracking_number: judge_publish(r) for c, r in zip(changes, results, strict=True)}
