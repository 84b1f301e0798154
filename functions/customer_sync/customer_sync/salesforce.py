"""The Salesforce adapter: reads Account changes in resumable slices and writes Accounts in batches.

Reads are resumable from a checkpoint: REST queries by key-set pagination on (SystemModstamp, Id), which
needs no server-side cursor (REST query locators expire after ~15 minutes, longer than a hand-over may
take); Bulk API 2.0 query results by job id + ``Sforce-Locator`` + rows done in the page (results are a
snapshot kept 7 days, so re-reading a page gives the same rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from salesforce_access import soql

from .mapping import MappingError, SyncMapping

if TYPE_CHECKING:
    import requests

    from salesforce_access import BulkJob, QueryPage, RecordResult, SalesforceAccess

SOBJECT = "Account"
EXTERNAL_ID = "ERP_Customer_Id__c"
MATCH_FIELDS = ("Id", "ERP_Customer_Id__c", "IsDeleted", "LastModifiedById", "LastModifiedDate", "SystemModstamp")


def parse_sf_datetime(text: str) -> datetime:
    """Salesforce's ``2024-05-01T10:00:00.123+0000`` (REST) or ``...Z`` (Bulk CSV) as an aware datetime."""
    text = text.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text).astimezone(UTC)


def sf_watermark(moment: datetime) -> str:
    """The one text form of Salesforce watermarks (sortable, millisecond precision)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _select(fields: Sequence[str], where: str, order: str = "") -> str:
    """SELECT ... FROM Account WHERE ...: names are constants or validated mapping fields, values are
    quoted by soql() (datetimes with their milliseconds)."""
    return f"SELECT {', '.join(fields)} FROM {SOBJECT} WHERE {where}{order}"  # noqa: S608 - see docstring


class ApiCallCounter:
    """Counts Salesforce API requests (``/services/data/``) made through the layer's session: the run summary
    reports what a run cost against the org's daily allocation."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        if "/services/data/" in (response.request.url or ""):
            self.count += 1
        return response

    def take(self) -> int:
        value, self.count = self.count, 0
        return value

    @classmethod
    def on(cls, access: SalesforceAccess) -> ApiCallCounter:
        """The counter hooked on this container's Salesforce session (once), reset for this invocation."""
        counter = getattr(access.session, "customer_sync_api_counter", None)
        if not isinstance(counter, cls):
            counter = cls()
            access.session.customer_sync_api_counter = counter  # type: ignore[attr-defined]
            access.session.hooks.setdefault("response", []).append(counter)
        counter.take()
        return counter


class SalesforceAccounts:
    def __init__(self, access: SalesforceAccess, read_fields: Sequence[str], integration_user_id: str):
        self.access = access
        self.read_fields = list(read_fields)
        self.user_id = integration_user_id

    @staticmethod
    def integration_user_id(access: SalesforceAccess) -> str:
        """The Id of the user the sync writes as: the token's own user (no query)."""
        user_id = access.user_id
        if not user_id:
            raise LookupError("Salesforce's token response named no user (no identity URL): set "
                              "SYNC_INTEGRATION_USER_ID to the integration user's Id")
        return user_id

    @staticmethod
    def check_mapping(access: SalesforceAccess, mapping: SyncMapping) -> None:
        """Every mapped Account field exists (and is writable where the sync writes it): one describe call.
        MappingError names each bad entry."""
        describe = access.request("GET", f"sobjects/{SOBJECT}/describe")
        fields = {f["name"]: f for f in describe.get("fields", [])}
        problems = []
        for index, field in enumerate(mapping.fields):
            info = fields.get(field.salesforce)
            label = f"fields[{index}] (salesforce {field.salesforce!r}, erp {field.erp!r})"
            if info is None:
                problems.append(f"{label}: Account has no field {field.salesforce}")
            elif field.direction != "to_erp" and not info.get("updateable", True):
                problems.append(f"{label}: Account.{field.salesforce} is not updateable")
        if EXTERNAL_ID not in fields or not fields[EXTERNAL_ID].get("externalId", True):
            problems.append(f"Account.{EXTERNAL_ID} must exist and be an external id")
        if problems:
            raise MappingError(f"mapping file {mapping.source} does not match the org: " + "; ".join(problems))

    # -- change queries -------------------------------------------------------------------------------

    def _where(self, window_from: str | None, cutoff: str, after: Sequence[str] | None, deleted: bool) -> str:
        parts = [soql("LastModifiedById != {u}", u=self.user_id),
                 soql("SystemModstamp <= {c}", c=parse_sf_datetime(cutoff))]
        if deleted:
            parts.append("IsDeleted = true")
        if window_from:
            parts.append(soql("SystemModstamp > {f}", f=parse_sf_datetime(window_from)))
        if after:  # key-set paging: equality on the stamp needs its milliseconds, which quote_soql keeps
            parts.append(soql("(SystemModstamp > {s} OR (SystemModstamp = {s} AND Id > {i}))",
                              s=parse_sf_datetime(after[0]), i=after[1]))
        return " AND ".join(parts)

    def count_changes(self, window_from: str | None, cutoff: str) -> int:
        query = _select(["COUNT()"], self._where(window_from, cutoff, None, False))
        body = self.access.request("GET", "query", params={"q": query})
        return int(body["totalSize"])

    def rest_changes(self, window_from: str | None, cutoff: str, after: Sequence[str] | None, *,
                     deleted: bool = False) -> Iterator[dict[str, Any]]:
        fields = ["Id", "ERP_Customer_Id__c", "SystemModstamp"] if deleted else self.read_fields
        where = self._where(window_from, cutoff, after, deleted)
        query = _select(fields, where, " ORDER BY SystemModstamp ASC, Id ASC")
        return self.access.query(query, include_deleted=deleted)

    def start_bulk_changes(self, window_from: str | None, cutoff: str) -> str:
        query = _select(self.read_fields, self._where(window_from, cutoff, None, False))
        return self.access.bulk.start_query(query).id

    def wait_bulk(self, job_id: str, kind: str) -> BulkJob:
        return self.access.bulk.wait(job_id, kind)  # type: ignore[arg-type]

    def bulk_page(self, job_id: str, locator: str | None, page_size: int) -> QueryPage:
        """One page of a finished query job, streamed; `next_locator` None on the last page."""
        return self.access.bulk.query_page(job_id, locator, page_size=page_size)

    def matches(self, salesforce_ids: Iterable[str], customer_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Accounts (deleted ones too) linked to these keys: the conflict and link check of one chunk."""
        sf_ids, erp_ids = sorted(set(salesforce_ids)), sorted(set(customer_ids))
        conditions = []
        if sf_ids:
            conditions.append(soql("Id IN {ids}", ids=sf_ids))
        if erp_ids:
            conditions.append(soql("ERP_Customer_Id__c IN {ids}", ids=erp_ids))
        if not conditions:
            return []
        query = _select(MATCH_FIELDS, " OR ".join(conditions))
        return list(self.access.query(query, include_deleted=True))

    # -- writes ---------------------------------------------------------------------------------------

    def upsert(self, rows: Sequence[Mapping[str, Any]]) -> list[RecordResult]:
        return self.access.collections.upsert(SOBJECT, EXTERNAL_ID, rows)

    def update(self, rows: Sequence[Mapping[str, Any]]) -> list[RecordResult]:
        return self.access.collections.update(SOBJECT, rows)

    def delete(self, ids: Sequence[str]) -> list[RecordResult]:
        return self.access.collections.delete(ids)

    def submit_bulk(self, operation: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """Create, upload and close Bulk ingest job(s) without waiting; None becomes #N/A (null the field)."""
        prepared = ({k: ("#N/A" if v is None else v) for k, v in row.items()} for row in rows)
        columns = list(rows[0].keys()) if rows else None
        jobs = self.access.bulk.ingest(SOBJECT, operation, prepared,  # type: ignore[arg-type]
                                       external_id_field=EXTERNAL_ID if operation == "upsert" else None,
                                       columns=columns, wait=False)
        return [job.id for job in jobs]

    def bulk_successes(self, job_id: str) -> Iterator[dict[str, str]]:
        return self.access.bulk.successful_results(job_id)

    def bulk_failures(self, job_id: str) -> Iterator[dict[str, str]]:
        return self.access.bulk.failed_results(job_id)
