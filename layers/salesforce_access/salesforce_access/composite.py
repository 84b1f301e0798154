"""Composite API: up to 25 dependent subrequests in one API call, optionally all-or-none.

Composite answers HTTP 200 even when subrequests fail, and an sObject Collections subrequest answers 200 even
when its records fail, so the result exposes every subresponse, `CompositeResult.errors()` / `causes()` list the
errors in both shapes, and `raise_for_errors` turns the first real failure (not the PROCESSING_HALTED or
ALL_OR_NONE_OPERATION_ROLLED_BACK echoes of a rollback) into a typed exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from salesforce_access.errors import (
    NotFound,
    RowLocked,
    SalesforceError,
    ValidationError,
    error_details,
)

MAX_SUBREQUESTS = 25
_ROLLBACK_CODES = {"PROCESSING_HALTED", "ALL_OR_NONE_OPERATION_ROLLED_BACK"}


class Subrequest(BaseModel):
    """One subrequest. ``url`` may be relative to ``/services/data/vXX.X/`` (``sobjects/Account``)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    method: str
    url: str
    reference_id: str = Field(alias="referenceId")
    body: Any = None
    http_headers: dict[str, str] | None = Field(default=None, alias="httpHeaders")


class SubResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    reference_id: str = Field(alias="referenceId")
    http_status_code: int = Field(alias="httpStatusCode")
    body: Any = None
    http_headers: dict[str, str] = Field(default_factory=dict, alias="httpHeaders")

    @property
    def ok(self) -> bool:
        """The HTTP status says success (a collection may still hold failed records: see `succeeded`)."""
        return self.http_status_code < 400

    @property
    def succeeded(self) -> bool:
        """The subrequest succeeded, and so did every record of an sObject Collections subrequest."""
        return self.ok and not any(isinstance(item, dict) and item.get("success") is False
                                   for item in self._records())

    def _records(self) -> list[Any]:
        return self.body if self.http_status_code < 400 and isinstance(self.body, list) else []

    def errors(self) -> list[CompositeError]:
        """Every error of this subrequest: its error body, or the per-record errors of a collection (HTTP 200)."""
        if self.http_status_code >= 400:
            items = self.body if isinstance(self.body, list) else [self.body]
            return [_error(self, None, item) for item in items if isinstance(item, dict)] \
                or [CompositeError(self.reference_id, self.http_status_code, None, "", [], None)]
        found = []
        for index, record in enumerate(self._records()):
            if isinstance(record, dict) and record.get("success") is False:
                errors = record.get("errors") or [{}]
                found += [_error(self, index, item) for item in errors if isinstance(item, dict)]
        return found


@dataclass(frozen=True)
class CompositeError:
    """One error in a Composite answer. `record_index` is the record's position in a collection subrequest
    (None for an error of the whole subrequest); `rolled_back` marks the echoes of an all-or-none rollback."""

    reference_id: str
    http_status_code: int
    error_code: str | None
    message: str
    fields: list[str]
    record_index: int | None

    @property
    def rolled_back(self) -> bool:
        return self.error_code in _ROLLBACK_CODES


def _error(response: SubResponse, index: int | None, item: Mapping[str, Any]) -> CompositeError:
    code, message, fields = error_details(item)
    return CompositeError(response.reference_id, response.http_status_code, code, message, fields, index)


class CompositeResult(BaseModel):
    responses: list[SubResponse]

    @property
    def ok(self) -> bool:
        """Every subrequest succeeded, including every record of a collection subrequest."""
        return all(response.succeeded for response in self.responses)

    def by_reference(self) -> dict[str, SubResponse]:
        return {response.reference_id: response for response in self.responses}

    def errors(self) -> list[CompositeError]:
        """Every error, in subrequest order, rollback echoes included."""
        return [error for response in self.responses for error in response.errors()]

    def causes(self) -> list[CompositeError]:
        """The errors that made the request fail: the rollback echoes (PROCESSING_HALTED,
        ALL_OR_NONE_OPERATION_ROLLED_BACK) left out, unless they are all there is."""
        errors = self.errors()
        return [error for error in errors if not error.rolled_back] or errors

    def raise_for_errors(self) -> None:
        """Raise a typed SalesforceError for the first real cause of the failure.

        A collection subrequest answers HTTP 200 with ``success: false`` on the records that failed; under
        all-or-none its neighbours (and the other subrequests) only echo the rollback. The cause is found in
        either shape, so the exception names what actually went wrong.
        """
        causes = self.causes()
        if not causes:
            return
        first = causes[0]
        where = f"subrequest {first.reference_id!r}"
        if first.record_index is not None:
            where += f" record {first.record_index}"
        text = first.message or f"HTTP {first.http_status_code}"
        cls: type[SalesforceError]
        if first.error_code == "UNABLE_TO_LOCK_ROW":
            cls = RowLocked
        elif first.record_index is not None:
            cls = ValidationError  # a record refused by validation, as the same single-record call would be
        else:
            cls = {400: ValidationError, 404: NotFound}.get(first.http_status_code, SalesforceError)
        raise cls(f"{where} failed: {text}", status=first.http_status_code, error_code=first.error_code,
                  fields=first.fields)


def composite_payload(
    subrequests: Sequence[Subrequest | Mapping[str, Any]], api_version: str, *, all_or_none: bool,
    collate_subrequests: bool,
) -> dict[str, Any]:
    if not subrequests:
        raise ValueError("composite needs at least one subrequest")
    if len(subrequests) > MAX_SUBREQUESTS:
        raise ValueError(f"composite accepts at most {MAX_SUBREQUESTS} subrequests, got {len(subrequests)}")
    items = []
    for sub in subrequests:
        model = sub if isinstance(sub, Subrequest) else Subrequest.model_validate(sub)
        url = model.url if model.url.startswith("/services/") else f"/services/data/v{api_version}/{model.url}"
        item = model.model_dump(exclude_none=True)
        item["url"] = url
        items.append(item)
    return {"allOrNone": all_or_none, "collateSubrequests": collate_subrequests, "compositeRequest": items}
