"""The ERP adapter: the customer endpoints of the ERP stand-in (tooling/stand-ins; watermark listing, bulk
upsert by Salesforce Id, bulk update by customer id, deactivate), on the edge kit's outside-HTTP client
(``edge_kit.outside_http``: timeouts, retries with backoff, the API key, re-read once after a 401).

Every call it makes is safe to repeat (listing reads; bulk upsert is an upsert by key; bulk update and
deactivate set values, and a no-op write stamps nothing), so connection errors, timeouts, 429 and
500/502/503/504 are retried. A Retry-After of up to 2 s is waited for; a longer one (the ERP's maintenance
answer asks for 30 s, longer than a sync chunk should stall) ends the retries at once: the run pauses and
the next one resumes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from edge_kit.outside_http import ApiKeySource, OutsideHttpClient, OutsideHttpError, OutsideRetry, Timeouts

MAX_BULK = 500  # the ERP's limit per bulk-upsert and bulk-update request


class ErpUnavailable(Exception):
    """The ERP did not answer usefully after retries: transient, the run pauses and resumes later."""


class ErpRejected(Exception):
    """The ERP refused a whole request (4xx): a bug or a contract change, not a data problem."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"ERP answered {status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class ErpPage:
    cursor: str | None  # the cursor that fetched this page (None: the first page)
    items: list[dict[str, Any]]
    next_cursor: str | None


class ErpCustomers:
    def __init__(self, base_url: str, *, api_key: str | ApiKeySource | None = None, connect_timeout: float = 2.0,
                 read_timeout: float = 30.0, max_attempts: int = 4, backoff: float = 0.3):
        retry = OutsideRetry(max_attempts=max_attempts, base_delay=backoff, max_delay=8 * backoff,
                             statuses=frozenset({429, 500, 502, 503, 504}))
        self.http = OutsideHttpClient("erp", base_url, timeouts=Timeouts(connect_timeout, read_timeout), retry=retry,
                                      api_key=api_key)

    def _call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            response = self.http.request(method, path, idempotent=True, **kwargs)
        except OutsideHttpError as exc:
            raise ErpUnavailable(f"ERP {method} {path}: no answer ({type(exc).__name__})") from None
        try:
            body = response.json()
        except ValueError:
            raise ErpUnavailable(f"ERP {method} {path}: answered {response.status} with a body that is not "
                                 "JSON") from None
        if response.status >= 500 or response.status == 429:
            code = body.get("code", "") if isinstance(body, dict) else ""
            raise ErpUnavailable(f"ERP {method} {path}: {response.status} {code} after {response.attempts} attempt(s)")
        return response.status, body

    @staticmethod
    def _rejected(status: int, body: Any) -> ErpRejected:
        body = body if isinstance(body, dict) else {}
        return ErpRejected(status, str(body.get("code", "ERROR")), str(body.get("message", "")))

    # -- reads ----------------------------------------------------------------------------------------

    def page(self, since: str | None, cursor: str | None, limit: int) -> ErpPage:
        """One page of customers changed at or after `since`, ordered by (updated_at, customer_id)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        elif since:
            params["updated_since"] = since
        status, body = self._call("GET", "/customers", params=params)
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise self._rejected(status, body)
        return ErpPage(cursor, body["items"], body.get("next_cursor"))

    def pages(self, since: str | None, cursor: str | None, limit: int) -> Iterator[ErpPage]:
        while True:
            page = self.page(since, cursor, limit)
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def by_salesforce_id(self, salesforce_id: str) -> dict[str, Any] | None:
        status, body = self._call("GET", f"/customers/by-salesforce-id/{quote(salesforce_id, safe='')}")
        if status == 404:
            return None
        if status != 200:
            raise self._rejected(status, body)
        return body

    # -- writes ---------------------------------------------------------------------------------------

    def bulk_upsert(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Upsert ≤ 500 customers by salesforce_id; one result per row (``result``: created, updated,
        unchanged or error with ``error.code`` / ``error.message``)."""
        status, body = self._call("POST", "/customers/bulk-upsert", json={"customers": list(rows)})
        if status != 200 or not isinstance(body, dict) or len(body.get("results", [])) != len(rows):
            raise self._rejected(status, body)
        return body["results"]

    def bulk_update(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Update ≤ 500 customers by customer_id (here: link them to their Account); one result per row
        (``result``: updated, unchanged or error with ``error.code`` / ``error.message``)."""
        status, body = self._call("POST", "/customers/bulk-update", json={"customers": list(rows)})
        if status != 200 or not isinstance(body, dict) or len(body.get("results", [])) != len(rows):
            raise self._rejected(status, body)
        return body["results"]

    def deactivate(self, customer_id: str, updated_by: str) -> str | None:
        """"updated" / "unchanged", or None when the ERP has no such customer."""
        status, body = self._call("POST", f"/customers/{quote(customer_id, safe='')}/deactivate",
                                  json={"updated_by": updated_by})
        if status == 404:
            return None
        if status != 200:
            raise self._rejected(status, body)
        return body["result"]
