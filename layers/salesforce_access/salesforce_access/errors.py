"""Typed exceptions for everything that can go wrong between a Lambda and Salesforce.

Each carries Salesforce's ``errorCode``, ``message`` and ``fields`` so callers can branch on type, never on
text. Messages are built from Salesforce's error body and the URL path only (no headers, no query string,
no request body) and pass through `redact`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from salesforce_access.redaction import redact

if TYPE_CHECKING:
    import requests


class ConfigurationError(ValueError):
    """The Salesforce secret (or the layer's settings) is missing or malformed."""

    def __init__(self, message: str):
        super().__init__(redact(message))


class SalesforceError(Exception):
    """Base class: a Salesforce call failed. ``status`` is None when no HTTP response was received."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        fields: Sequence[str] = (),
        method: str | None = None,
        url: str | None = None,
        attempts: int = 1,
    ):
        self.message = redact(message)
        self.status = status
        self.error_code = error_code
        self.fields = list(fields)
        self.method = method
        self.path = urlsplit(url).path if url else None
        self.attempts = attempts
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"{self.error_code}: {self.message}" if self.error_code else self.message
        if self.fields:
            text += f" (fields: {', '.join(self.fields)})"
        if self.method and self.path:
            text += f" [{self.method} {self.path}"
            text += f" -> {self.status}]" if self.status is not None else "]"
        if self.attempts > 1:
            text += f" after {self.attempts} attempts"
        return text

    def __str__(self) -> str:
        return self._describe()


class AuthenticationError(SalesforceError):
    """The OAuth token endpoint refused the credentials (``error``/``error_description`` from its body)."""

    def __init__(self, error: str, description: str, *, status: int | None = None, url: str | None = None):
        self.error = error
        self.error_description = redact(description)
        super().__init__(description, status=status, error_code=error, method="POST", url=url)


class SessionExpired(SalesforceError):
    """401 INVALID_SESSION_ID that persisted after one re-authentication."""


class RequestLimitExceeded(SalesforceError):
    """403 REQUEST_LIMIT_EXCEEDED: the org's API allocation (or concurrency limit) is used up; never retried."""


class AllocationExhausted(SalesforceError):
    """The layer's own guard: the configured share of the daily API allocation is already used."""


class NotFound(SalesforceError):
    """404: the record or resource does not exist (NOT_FOUND, ENTITY_IS_DELETED...)."""


class ValidationError(SalesforceError):
    """400: Salesforce rejected the request (malformed query, missing required field, bad value...)."""


class TransientError(SalesforceError):
    """A failure worth retrying (connection error, timeout, 503, row lock); raised when retries ran out."""


class ServiceUnavailable(TransientError):
    """503 (or a 502/504 gateway error): Salesforce is in maintenance or overloaded."""


class RowLocked(TransientError):
    """UNABLE_TO_LOCK_ROW: another transaction holds the record."""


class ConnectionFailed(TransientError):
    """No response: connection refused/reset, DNS failure or timeout."""


class OutcomeUnknown(ConnectionFailed):
    """A non-idempotent request was sent but no response arrived: it may or may not have been applied.

    Not retried automatically, because replaying a create could duplicate records. Use an upsert by
    external id, or check the target state, before sending it again.
    """


class BudgetExhausted(SalesforceError):
    """The invocation's time budget ran out while waiting (e.g. for a Bulk job); ``job_id`` allows resuming."""

    def __init__(self, message: str, *, job_id: str | None = None, **kwargs: Any):
        self.job_id = job_id
        super().__init__(message, **kwargs)


class BulkJobFailed(SalesforceError):
    """A Bulk API 2.0 job ended in state Failed or Aborted."""

    def __init__(self, message: str, *, job_id: str, state: str, **kwargs: Any):
        self.job_id = job_id
        self.state = state
        super().__init__(message, **kwargs)


_GATEWAY_STATUSES = {502, 504}


def error_details(body: Any) -> tuple[str | None, str, list[str]]:
    """Extract (errorCode, message, fields) from any Salesforce error envelope."""
    item = body[0] if isinstance(body, list) and body else body
    if isinstance(item, dict):
        code = item.get("errorCode") or item.get("statusCode") or item.get("error")
        message = item.get("message") or item.get("error_description") or ""
        fields = item.get("fields") or []
        return (str(code) if code else None), str(message), [str(f) for f in fields]
    return None, "", []


def error_from_response(response: requests.Response, method: str) -> SalesforceError:
    """Map an HTTP error response to the most specific exception type."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    code, message, fields = error_details(body)
    if not message:
        text = response.text[:200].strip() if body is None else json.dumps(body)[:200]
        message = f"HTTP {status}" + (f": {text}" if text else "")
    kwargs: dict[str, Any] = {
        "status": status,
        "error_code": code,
        "fields": fields,
        "method": method,
        "url": response.url,
    }
    cls: type[SalesforceError] = SalesforceError
    if code == "UNABLE_TO_LOCK_ROW" or "UNABLE_TO_LOCK_ROW" in message:
        cls = RowLocked
    elif status == 401 and code == "INVALID_SESSION_ID":
        cls = SessionExpired
    elif code == "REQUEST_LIMIT_EXCEEDED":
        cls = RequestLimitExceeded
    elif status == 503 or status in _GATEWAY_STATUSES:
        cls = ServiceUnavailable
    elif status == 404:
        cls = NotFound
    elif status == 400:
        cls = ValidationError
    return cls(message, **kwargs)
