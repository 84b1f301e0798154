"""The client base for outside HTTP systems (the ERP, billing): what every adapter of such a system needs,
written once. An adapter keeps only its domain: paths, documents and which answer means which error.

- ``ApiKeyReader``: the system's API key from Secrets Manager (Powertools parameters, cached for
  ``max_age``), the bare key or ``{"api_key": "..."}``; read again once when the system answers 401, in
  case the key was rotated.
- ``OutsideHttpClient.request``: one call with connect and read timeouts; with a deadline (a
  ``salesforce_access.budget.Budget``, see ``invocation_deadline``) both are cut to what is left of it and
  the whole answer must arrive before it. Requests safe to repeat (``idempotent=True``: reads, upserts,
  writes carrying an idempotency key) are retried on connection errors, timeouts and the policy's statuses,
  with full-jitter backoff, waiting a Retry-After up to ``max_retry_after`` (a longer one ends the retries:
  the caller's own later retry waits it out), and only while the deadline still holds the next attempt.
  Every retry is logged (system, method, path, attempt, status or error, wait; never a header) and counted
  (metric ``OutsideRetries``, dimension ``system``).
- Failures without a usable answer are typed: ``OutsideTimeout``, ``OutsideUnreachable``,
  ``OutsideBadAnswer``. An answer of any status is returned after the retries, as ``OutsideResponse``.

The retry loop is ours, not urllib3's Retry mounted on the session: that one retries inside a single
``session.request``, so it cannot cut each attempt's timeouts to the deadline, give up when a Retry-After
outlasts it, read a rotated key after a 401, or log the retries. Its Retry-After parser is used.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
from urllib3.exceptions import InvalidHeader, ReadTimeoutError
from urllib3.util.retry import Retry

from salesforce_access.budget import Budget, RetryPolicy, Timeouts
from salesforce_access.observability import logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = [
    "ApiKeyReader", "ApiKeySource", "Budget", "OutsideBadAnswer", "OutsideHttpClient", "OutsideHttpError",
    "OutsideResponse", "OutsideRetry", "OutsideTimeout", "OutsideUnreachable", "Timeouts", "invocation_deadline",
]

ApiKeySource = Callable[[bool], str | None]
"""``source(refresh) -> key`` (None: send no key); ``refresh=True`` after a 401 asks for a fresh read."""

RETRY_MARGIN_SECONDS = 0.2  # kept in the deadline beyond the next attempt, for the adapter to answer
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
_RETRY_AFTER = Retry(retry_after_max=86400)  # only for its Retry-After parser (seconds or an HTTP date)


# -- failures ---------------------------------------------------------------------------------------------------


class OutsideHttpError(Exception):
    """No usable answer from the outside system. The message names the system, method and path (never a
    header, a query string or a body), so it is safe to log."""

    def __init__(self, system: str, method: str, path: str, what: str, *, attempts: int):
        after = f" (after {attempts} attempts)" if attempts > 1 else ""
        super().__init__(f"{system} {method} {path}: {what}{after}")
        self.system, self.method, self.path, self.attempts = system, method, path, attempts


class OutsideTimeout(OutsideHttpError):
    """No answer within the timeouts, or not before the deadline."""


class OutsideUnreachable(OutsideHttpError):
    """The connection was refused, could not be made, or broke before the answer was complete."""


class OutsideBadAnswer(OutsideHttpError):
    """An answer that cannot be read (too large, undecodable): not retried, it would be the same again."""


# -- the key ----------------------------------------------------------------------------------------------------


class ApiKeyReader:
    """An ``ApiKeySource`` over Secrets Manager. boto3 is imported on the first read, not at import; an
    empty ARN means the system needs no key (the local stand-ins by default)."""

    def __init__(self, secret_arn: str, *, max_age: int = 300, field_name: str = "api_key",
                 provider: SecretsProvider | None = None):
        self.secret_arn = secret_arn
        self.max_age = max_age
        self.field_name = field_name
        self._provider = provider

    def __call__(self, refresh: bool = False) -> str | None:
        if not self.secret_arn:
            return None
        value = self._secrets().get(self.secret_arn, max_age=self.max_age, force_fetch=refresh)
        text = (value.decode() if isinstance(value, bytes) else str(value)).strip()
        if text.startswith("{"):
            try:
                text = str(json.loads(text).get(self.field_name) or "").strip()
            except (ValueError, AttributeError):
                raise ValueError(f"the secret {self.secret_arn} is neither a bare key nor a JSON object "
                                 f"with {self.field_name!r}") from None  # names the secret, never its value
        return text or None

    def __repr__(self) -> str:
        return f"ApiKeyReader({self.secret_arn!r})"

    def _secrets(self) -> SecretsProvider:
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider
            from botocore.config import Config

            # botocore's defaults (60 s timeouts, several retries) would outlast a caller's deadline on a cold start.
            self._provider = SecretsProvider(boto_config=Config(connect_timeout=1, read_timeout=2,
                                                                retries={"max_attempts": 2, "mode": "standard"}))
        return self._provider


def _key_source(api_key: str | ApiKeySource | None) -> ApiKeySource | None:
    if api_key is None or callable(api_key):
        return api_key
    static = api_key or None
    return lambda refresh: static


# -- deadline, retry policy, answer --------------------------------------------------------------------------------


def invocation_deadline(context: LambdaContext, *, budget_seconds: float | None = None, margin_seconds: float = 0.5,
                        clock: Callable[[], float] = time.monotonic) -> Budget:
    """The caller's budget (if any), cut short to the Lambda invocation's time left minus a margin kept to
    answer, log and flush metrics."""
    seconds = context.get_remaining_time_in_millis() / 1000.0 - margin_seconds
    if budget_seconds is not None:
        seconds = min(seconds, budget_seconds)
    return Budget.seconds(max(seconds, 0.0), clock)


@dataclass(frozen=True)
class OutsideRetry(RetryPolicy):
    """The layer's full-jitter backoff (``delay(n)``: uniform(0, min(max_delay, base_delay * 2**(n-1))))
    plus which answers are transient and the longest Retry-After worth waiting for in-process."""

    base_delay: float = 0.2
    max_delay: float = 2.0
    max_attempts: int = 2
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 502, 503, 504}))
    max_retry_after: float = 2.0


@dataclass(frozen=True)
class OutsideResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    attempts: int

    def json(self) -> Any:
        """The body as JSON (None for an empty body); ValueError if it is not JSON."""
        return json.loads(self.body) if self.body else None

    @property
    def retry_after(self) -> float | None:
        """Retry-After in seconds (None if absent or unreadable)."""
        value = self.headers.get("Retry-After")
        if not value:
            return None
        try:
            return _RETRY_AFTER.parse_retry_after(value)
        except InvalidHeader:
            return None


# -- the client ---------------------------------------------------------------------------------------------------


class OutsideHttpClient:
    """One outside system's base URL, key, timeouts and retry policy; adapters call ``request``."""

    def __init__(self, system: str, base_url: str, *, timeouts: Timeouts, retry: OutsideRetry | None = None,
                 api_key: str | ApiKeySource | None = None, api_key_header: str = "X-Api-Key",
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.system = system
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts
        self.retry = retry or OutsideRetry()
        self.max_body_bytes = max_body_bytes
        self.session = session or requests.Session()
        self._api_key = _key_source(api_key)
        self._key_refreshable = callable(api_key)
        self._api_key_header = api_key_header
        self._sleep = sleep

    def request(self, method: str, path: str, *, idempotent: bool, deadline: Budget | None = None,
                json: Any = None, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> OutsideResponse:
        """The answer, of any status, after the retries the policy and the deadline allow; raises an
        ``OutsideHttpError`` when no usable answer came."""
        attempt, refreshed_key, refresh_now = 0, False, False
        while True:
            attempt += 1
            key = self._api_key(refresh_now) if self._api_key is not None else None
            refresh_now = False
            try:
                response = self._attempt(method, path, deadline, key, attempt,
                                         json=json, params=params, headers=headers)
            except (OutsideTimeout, OutsideUnreachable) as failure:
                wait = self.retry.delay(attempt)
                if not (idempotent and self._fits(attempt, deadline, wait, whole=isinstance(failure, OutsideTimeout))):
                    raise
                self._retrying(method, path, attempt, wait, error=type(failure).__name__)
                continue
            if response.status == 401 and key and self._key_refreshable and not refreshed_key:
                # once per call: a refused request was not processed, so resending it is safe even if not idempotent
                refreshed_key = refresh_now = True
                attempt -= 1
                logger.info("outside system refused the API key; reading it again",
                            extra={"system": self.system, "method": method, "path": path})
                continue
            if idempotent and response.status in self.retry.statuses:
                retry_after = response.retry_after or 0.0
                wait = max(retry_after, self.retry.delay(attempt))
                if retry_after <= self.retry.max_retry_after and self._fits(attempt, deadline, wait, whole=False):
                    self._retrying(method, path, attempt, wait, status=response.status)
                    continue
            return response

    def _fits(self, attempt: int, deadline: Budget | None, wait: float, *, whole: bool) -> bool:
        """Another attempt only if allowed and the deadline holds the wait and the attempt: after a timeout a
        whole one (connect and read timeouts: the system is slow), otherwise at least a connection."""
        if attempt >= self.retry.max_attempts:
            return False
        needed = self.timeouts.connect + (self.timeouts.read if whole else 0.0)
        return deadline is None or deadline.remaining() > wait + needed + RETRY_MARGIN_SECONDS

    def _retrying(self, method: str, path: str, attempt: int, wait: float, *, status: int | None = None,
                  error: str | None = None) -> None:
        cause = {"status": status} if status is not None else {"error": error}
        logger.warning("outside call retried", extra={
            "system": self.system, "method": method, "path": path, "attempt": attempt, **cause,
            "wait_seconds": round(wait, 3)})
        _count_retry(self.system)
        self._sleep(wait)

    def _attempt(self, method: str, path: str, deadline: Budget | None, key: str | None, attempt: int, *,
                 json: Any, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None) -> OutsideResponse:
        def failure(kind: type[OutsideHttpError], what: str) -> OutsideHttpError:
            return kind(self.system, method, path, what, attempts=attempt)

        connect, read = self.timeouts.connect, self.timeouts.read
        if deadline is not None:
            remaining = deadline.remaining()
            if remaining <= 0.01:
                raise failure(OutsideTimeout, "no time left before the deadline")
            connect, read = min(connect, remaining), min(read, remaining)
        sent = {"Accept": "application/json", **(headers or {})}
        if key:
            sent[self._api_key_header] = key
        try:
            # No redirects: the key must never follow one to another host; an outside API answers in place.
            with self.session.request(method, self.base_url + path, json=json, params=params, headers=sent,
                                      timeout=(connect, read), stream=True, allow_redirects=False) as response:
                body = self._read(response, deadline, failure)
                return OutsideResponse(response.status_code, response.headers, body, attempt)
        except requests.Timeout:
            raise failure(OutsideTimeout, "no answer in time") from None
        except requests.ConnectionError as exc:
            if exc.args and isinstance(exc.args[0], ReadTimeoutError):  # requests' name for a stalled body
                raise failure(OutsideTimeout, "the answer stalled") from None
            raise failure(OutsideUnreachable, "could not be reached or dropped the connection") from None
        except requests.exceptions.ChunkedEncodingError:
            raise failure(OutsideUnreachable, "the connection broke during the answer") from None
        except requests.RequestException as exc:
            raise failure(OutsideBadAnswer, f"the answer could not be read ({type(exc).__name__})") from None

    def _read(self, response: requests.Response, deadline: Budget | None,
              failure: Callable[[type[OutsideHttpError], str], OutsideHttpError]) -> bytes:
        """The whole body, within the size limit and before the deadline (a trickling body cannot stretch it)."""
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=16384):
            size += len(chunk)
            if size > self.max_body_bytes:
                raise failure(OutsideBadAnswer, f"the answer is larger than {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if deadline is not None and deadline.remaining() <= 0.0:
                raise failure(OutsideTimeout, "the answer did not arrive before the deadline")
        return b"".join(chunks)


def _count_retry(system: str) -> None:
    """One EMF metric of its own (Powertools single_metric), so the ``system`` dimension stays off the
    function's other metrics."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    dimensions = {"system": system}
    if service := os.environ.get("POWERTOOLS_SERVICE_NAME"):
        dimensions["service"] = service
    with single_metric(name="OutsideRetries", unit=MetricUnit.Count, value=1, namespace=metrics.namespace,
                       default_dimensions=dimensions):
        pass
