"""Adapter for the billing system's HTTP API (the billing stand-in's README in
tooling/stand-ins is the contract it keeps), on the edge kit's outside-HTTP client (``edge_kit.outside_http``).

Every request has connect and read timeouts. A request is retried once in-process (connection failure,
timeout, 408/409/425/429/502/503/504, waiting a Retry-After of up to 2 s; a longer one is left to SQS) because
it carries an ``Idempotency-Key``: billing answers a replay with the account the first request opened, so even
a POST is safe to repeat. Longer outages are left to SQS redelivery with backoff.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from pydantic import ValidationError

from billing_consumer.errors import BillingRejected, BillingUnavailable
from billing_consumer.models import BillingAccount, ContractSigned
from edge_kit.outside_http import (
    OutsideHttpClient,
    OutsideHttpError,
    OutsideResponse,
    OutsideRetry,
    OutsideTimeout,
    Timeouts,
)

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""Transient answers: 409 is billing's "a request with this key is still in progress". All but 500 are
retried in-process (a 500 may be a bug: SQS's backoff gives it time)."""


MAX_IN_PROCESS_WAIT = 2.0
"""Seconds the in-process retry may wait (a longer Retry-After is left to SQS redelivery with backoff)."""


@dataclass(frozen=True)
class BillingSettings:
    base_url: str
    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    retries: int = 1
    backoff_factor: float = 0.3

    @property
    def worst_case_seconds(self) -> float:
        """Longest one `open_account` can take (timeouts of every attempt plus the backoff between them)."""
        attempts = self.retries + 1
        return attempts * (self.connect_timeout + self.read_timeout) + self.retries * MAX_IN_PROCESS_WAIT

_HEADER_SAFE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")  # visible ASCII, inner spaces
_KEPT_AS_IS = "".join(c for c in string.punctuation if c != "%")


def correlation_header(value: str) -> str:
    """A caller's request id as a header value. Kept as is when it is visible ASCII; otherwise (a line break,
    leading space, non-Latin-1 text: requests refuses those, and the contract would never be billed)
    percent-encoded as UTF-8, so the id stays traceable and the header always valid."""
    return value if _HEADER_SAFE.fullmatch(value) else quote(value, safe=_KEPT_AS_IS)


def idempotency_key(contract: ContractSigned) -> str:
    return f"contract-{contract.contract_id}"


class BillingClient:
    def __init__(self, settings: BillingSettings, session: requests.Session | None = None):
        self.settings = settings
        retry = OutsideRetry(max_attempts=settings.retries + 1, base_delay=settings.backoff_factor,
                             max_delay=MAX_IN_PROCESS_WAIT, statuses=RETRYABLE_STATUSES - {500},
                             max_retry_after=MAX_IN_PROCESS_WAIT)
        self.http = OutsideHttpClient("billing", settings.base_url,
                                      timeouts=Timeouts(settings.connect_timeout, settings.read_timeout),
                                      retry=retry, session=session)

    def open_account(self, contract: ContractSigned) -> BillingAccount:
        """Open (or, for a replayed key, find) the billing account of a contract."""
        headers = {"Idempotency-Key": idempotency_key(contract)}
        if contract.source_id:
            headers["X-Correlation-Id"] = correlation_header(contract.source_id)
        response = self._call("POST", "/billing-accounts", json=contract.billing_fields(), headers=headers)
        if response.status == 422 and _error_code(response) == "idempotency_key_reused":
            # An earlier delivery of the same contract (another entry point, other optional fields) opened
            # the account but its answer was lost: the contract is billed, find its account.
            existing = self.find_account(contract.contract_id)
            if existing is not None:
                return existing
        if response.status in (200, 201):
            return _account(response)
        raise _failure(response)

    def find_account(self, contract_id: str) -> BillingAccount | None:
        response = self._call("GET", "/billing-accounts", params={"contract_id": contract_id})
        if response.status != 200:
            raise _failure(response)
        try:
            items = response.json()["items"]
        except (ValueError, KeyError, TypeError):
            raise BillingUnavailable("billing answered an unreadable account list") from None
        return BillingAccount.model_validate(items[0]) if items else None

    def _call(self, method: str, path: str, **kwargs: Any) -> OutsideResponse:
        """Every call carries an idempotency key or is a read: safe to repeat."""
        try:
            return self.http.request(method, path, idempotent=True, **kwargs)
        except OutsideTimeout:
            raise BillingUnavailable(f"billing did not answer {method} {path} in time") from None
        except OutsideHttpError as exc:
            raise BillingUnavailable(f"billing unreachable for {method} {path}: {type(exc).__name__}") from None


def _error_code(response: OutsideResponse) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def _account(response: OutsideResponse) -> BillingAccount:
    try:
        return BillingAccount.model_validate(response.json())
    except (ValueError, ValidationError):
        raise BillingUnavailable(f"billing answered {response.status} without a readable account") from None


def _failure(response: OutsideResponse) -> BillingRejected | BillingUnavailable:
    status = response.status
    code = _error_code(response)
    try:
        detail = response.json().get("message") if code else None
    except (ValueError, AttributeError):
        detail = None
    text = f"billing answered {status}" + (f" {code}" if code else "") + (f": {detail}" if detail else "")
    if status in RETRYABLE_STATUSES or status >= 500:
        return BillingUnavailable(text)
    if 400 <= status < 500:
        return BillingRejected(text[:500], status=status, error=code)
    return BillingUnavailable(text)
