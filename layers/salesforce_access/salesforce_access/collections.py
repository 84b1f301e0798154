"""sObject Collections: create, update, upsert and delete up to 200 records per request.

Input of any length is cut into chunks of 200; the result is one `RecordResult` per input record, in
input order. ``all_or_none`` applies within each chunk (Salesforce has no cross-request transaction).
Creates are POSTs and are not replayed after a timeout (OutcomeUnknown); upserts by external id are
PATCHes and are, which is why loads that must survive retries should upsert.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from salesforce_access.observability import tracer

if TYPE_CHECKING:
    from salesforce_access.access import SalesforceAccess

CHUNK_SIZE = 200


class RecordError(BaseModel):
    """One error of one record (Collections use ``statusCode`` where REST uses ``errorCode``)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    status_code: str = Field(alias="statusCode")
    message: str = ""
    fields: list[str] = Field(default_factory=list)


class RecordResult(BaseModel):
    """The outcome for one record: ``id`` is None for a failed create; ``created`` only for upserts."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    success: bool
    created: bool | None = None
    errors: list[RecordError] = Field(default_factory=list)


def chunks(records: Iterable[Any], size: int = CHUNK_SIZE) -> Iterator[list[Any]]:
    """Consecutive lists of at most `size` items (works on iterators without materialising them)."""
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


def _typed(sobject: str, record: Mapping[str, Any]) -> dict[str, Any]:
    body = {key: value for key, value in record.items() if key != "attributes"}
    return {"attributes": {"type": sobject}, **body}


class Collections:
    """Batch DML through ``/composite/sobjects``; get it from ``access.collections``."""

    def __init__(self, access: SalesforceAccess):
        self._access = access

    @tracer.capture_method(capture_response=False)
    def create(
        self, sobject: str, records: Iterable[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[RecordResult]:
        return self._send("POST", "composite/sobjects", sobject, records, all_or_none)

    @tracer.capture_method(capture_response=False)
    def update(
        self, sobject: str, records: Iterable[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[RecordResult]:
        """Each record needs its ``Id`` (or ``id``)."""
        return self._send("PATCH", "composite/sobjects", sobject, records, all_or_none)

    @tracer.capture_method(capture_response=False)
    def upsert(
        self,
        sobject: str,
        external_id_field: str,
        records: Iterable[Mapping[str, Any]],
        *,
        all_or_none: bool = False,
    ) -> list[RecordResult]:
        """Insert or update by external id; each result says whether the record was ``created``."""
        path = f"composite/sobjects/{quote(sobject)}/{quote(external_id_field)}"
        return self._send("PATCH", path, sobject, records, all_or_none)

    @tracer.capture_method(capture_response=False)
    def delete(self, ids: Iterable[str], *, all_or_none: bool = False) -> list[RecordResult]:
        results: list[RecordResult] = []
        for batch in chunks(ids):
            body = self._access.request(
                "DELETE",
                "composite/sobjects",
                params={"ids": ",".join(batch), "allOrNone": str(all_or_none).lower()},
            )
            results.extend(self._parse(body, len(batch)))
        return results

    def _send(
        self, method: str, path: str, sobject: str, records: Iterable[Mapping[str, Any]], all_or_none: bool
    ) -> list[RecordResult]:
        results: list[RecordResult] = []
        for batch in chunks(records):
            payload = {"allOrNone": all_or_none, "records": [_typed(sobject, record) for record in batch]}
            body = self._access.request(method, path, json=payload)
            results.extend(self._parse(body, len(batch)))
        return results

    @staticmethod
    def _parse(body: Any, expected: int) -> Sequence[RecordResult]:
        items = body if isinstance(body, list) else []
        if len(items) != expected:
            raise ValueError(f"sObject Collections returned {len(items)} results for {expected} records")
        return [RecordResult.model_validate(item) for item in items]
