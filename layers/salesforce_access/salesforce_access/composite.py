"""Composite API: up to 25 dependent subrequests in one API call, optionally all-or-none.

Composite answers HTTP 200 even when subrequests fail, so the result exposes every subresponse and
`CompositeResult.raise_for_errors` turns the first real failure (not the PROCESSING_HALTED echoes of a
rollback) into a typed exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from salesforce_access.errors import (
    NotFound,
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
        return self.http_status_code < 400


class CompositeResult(BaseModel):
    responses: list[SubResponse]

    @property
    def ok(self) -> bool:
        return all(response.ok for response in self.responses)

    def by_reference(self) -> dict[str, SubResponse]:
        return {response.reference_id: response for response in self.responses}

    def raise_for_errors(self) -> None:
        """Raise a typed SalesforceError for the failing subrequest that caused the others to halt."""
        failures = [response for response in self.responses if not response.ok]
        if not failures:
            return
        causes = [f for f in failures if error_details(f.body)[0] not in _ROLLBACK_CODES] or failures
        first = causes[0]
        code, message, fields = error_details(first.body)
        cls: type[SalesforceError] = {400: ValidationError, 404: NotFound}.get(first.http_status_code,
                                                                              SalesforceError)
        raise cls(
            f"subrequest {first.reference_id!r} failed: {message or 'HTTP ' + str(first.http_status_code)}",
            status=first.http_status_code, error_code=code, fields=fields,
        )


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
