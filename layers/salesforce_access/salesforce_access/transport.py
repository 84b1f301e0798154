"""The shared ``requests.Session`` that every Salesforce call goes through, simple-salesforce's included.

simple-salesforce clients built from a session id never refresh it and Bulk 2.0 handlers capture it at
creation, so this session sets ``Authorization: Bearer <current token>`` itself on every request,
whatever the caller put there. It also applies connect/read timeouts, records ``Sforce-Limit-Info``, turns
error responses into typed exceptions and runs the retry and re-authentication policy:

* connection errors, timeouts, 503/502/504 and UNABLE_TO_LOCK_ROW are retried with exponential backoff and
  full jitter while the time budget lasts; a non-idempotent request that may have reached Salesforce
  (read timeout, connection dropped after sending, gateway timeout) is never replayed (OutcomeUnknown);
* 401 INVALID_SESSION_ID triggers one re-authentication and one replay, per request (a loop, no recursion);
* 403 REQUEST_LIMIT_EXCEEDED and every other error are raised at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests
from aws_lambda_powertools.metrics import MetricUnit

from salesforce_access.budget import IDEMPOTENT_METHODS, Budget, RetryPolicy, Timeouts
from salesforce_access.errors import (
    ConnectionFailed,
    OutcomeUnknown,
    SalesforceError,
    SessionExpired,
    TransientError,
    error_from_response,
)
from salesforce_access.limits import UsageTracker
from salesforce_access.observability import logger, metrics

if TYPE_CHECKING:
    from salesforce_access.auth import TokenManager

_MIN_ATTEMPT_SECONDS = 0.5
_CREDENTIAL_HEADERS = {"authorization", "x-sfdc-session"}
_UNSAFE_STATUSES = {502, 504}  # a gateway may have forwarded the request before failing


def _rewinder(kwargs: dict[str, Any]) -> Callable[[], None] | None:
    """How to replay the request body, or None when it cannot be replayed (a generator, say)."""
    if kwargs.get("files"):
        return None
    data = kwargs.get("data")
    if data is None or isinstance(data, bytes | str | dict | list | tuple):
        return lambda: None
    if hasattr(data, "seek") and hasattr(data, "tell"):
        position = data.tell()
        return lambda: data.seek(position)
    return None


def _failed_before_sending(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection never got as far as sending (refused, DNS, connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    name = type(reason).__name__
    return name in {"NewConnectionError", "NameResolutionError", "ConnectTimeoutError"}


class SalesforceSession(requests.Session):
    """``requests.Session`` with Salesforce auth, timeouts, limit tracking and retry policy built in."""

    def __init__(
        self,
        *,
        usage: UsageTracker,
        budget: Callable[[], Budget],
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__()
        self.verify = verify
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.usage = usage
        self.tokens: TokenManager | None = None  # set by SalesforceAccess (it needs this session to post)
        self._budget = budget
        self._sleep = sleep

    # -- entry points -------------------------------------------------------------------------------

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, idempotent: bool | None = None, **kwargs: Any
    ) -> requests.Response:
        """Authenticated request. Raises a SalesforceError subclass for any status >= 400."""
        if args:
            raise TypeError("pass request options to SalesforceSession.request by keyword")
        return self._perform(str(method), str(url), authenticated=True, idempotent=idempotent, **kwargs)

    def post_token_form(self, url: str, **kwargs: Any) -> requests.Response:
        """Unauthenticated POST for the OAuth token endpoint.

        Replaying a token request is safe (an extra token is harmless), so it counts as idempotent. Error
        responses other than transient ones are returned for the caller to read the OAuth error.
        """
        return self._perform("POST", url, authenticated=False, idempotent=True, **kwargs)

    # -- the policy ---------------------------------------------------------------------------------

    def _perform(
        self, method: str, url: str, *, authenticated: bool, idempotent: bool | None, **kwargs: Any
    ) -> requests.Response:
        method = method.upper()
        idempotent = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        given = dict(kwargs.pop("headers", None) or {})
        headers = {key: value for key, value in given.items() if key.lower() not in _CREDENTIAL_HEADERS}
        wants_bulk1_header = any(key.lower() == "x-sfdc-session" for key in given)
        requested_timeout = kwargs.pop("timeout", None)
        # Explicit, because requests lets REQUESTS_CA_BUNDLE override a session-level CA bundle.
        kwargs.setdefault("verify", self.verify)
        rewind = _rewinder(kwargs)
        tokens = self.tokens
        if authenticated and tokens is None:
            raise RuntimeError("SalesforceSession has no token manager")
        budget = self._budget()
        attempts = 0
        reauthenticated = False
        while True:
            attempts += 1
            token = None
            call_headers = dict(headers)
            if authenticated and tokens is not None:
                token = tokens.current()
                call_headers["Authorization"] = f"Bearer {token.value}"
                if wants_bulk1_header:
                    call_headers["X-SFDC-Session"] = token.value
            if rewind is not None:
                rewind()
            timeout = self._timeout(budget, requested_timeout)
            error: SalesforceError
            try:
                response = super().request(method, url, headers=call_headers, timeout=timeout, **kwargs)
            except requests.exceptions.SSLError:
                raise ConnectionFailed("TLS handshake or certificate verification failed", method=method, url=url) \
                    from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                before = isinstance(exc, requests.exceptions.ConnectionError) and _failed_before_sending(exc)
                reason = f"no response ({type(exc).__name__})"
                if not before and not idempotent:
                    raise OutcomeUnknown(
                        f"{reason} after the request was sent; not replayed because {method} is not idempotent",
                        method=method, url=url, attempts=attempts,
                    ) from None
                error = ConnectionFailed(reason, method=method, url=url)
                retryable = rewind is not None
            else:
                self.usage.record(response.headers.get("Sforce-Limit-Info"))
                if response.status_code < 400:
                    return response
                error = error_from_response(response, method)
                response.close()
                if (isinstance(error, SessionExpired) and not reauthenticated
                        and rewind is not None and tokens is not None and token is not None):
                    logger.info("Salesforce session expired; re-authenticating once and replaying",
                                extra={"method": method, "path": error.path})
                    metrics.add_metric(name="SalesforceReauthentications", unit=MetricUnit.Count, value=1)
                    tokens.invalidate(token)
                    reauthenticated = True
                    attempts -= 1  # the replay is not a retry of a transient failure
                    continue
                if not isinstance(error, TransientError):
                    if authenticated:
                        raise error
                    return response
                retryable = rewind is not None and (idempotent or response.status_code not in _UNSAFE_STATUSES)
            if not retryable:
                raise self._given_up(error, attempts)
            delay = self.retry.delay(attempts)
            if attempts >= self.retry.max_attempts or not budget.allows(delay + _MIN_ATTEMPT_SECONDS):
                raise self._given_up(error, attempts)
            logger.warning(
                "Transient Salesforce failure; retrying",
                extra={"method": method, "path": error.path, "error": type(error).__name__,
                       "error_code": error.error_code, "attempt": attempts, "delay_seconds": round(delay, 3)},
            )
            metrics.add_metric(name="SalesforceRetries", unit=MetricUnit.Count, value=1)
            self._sleep(delay)

    def _timeout(self, budget: Budget, requested: Any) -> tuple[float, float]:
        if isinstance(requested, tuple):
            connect, read = requested
        elif requested is not None:
            connect = read = float(requested)
        else:
            connect, read = self.timeouts.connect, self.timeouts.read
        remaining = budget.remaining()
        if not math.isinf(remaining):
            floor = max(remaining, _MIN_ATTEMPT_SECONDS)  # the budget shortens timeouts, never below the floor
            connect, read = min(connect, floor), min(read, floor)
        return connect, read

    @staticmethod
    def _given_up(error: SalesforceError, attempts: int) -> SalesforceError:
        error.attempts = attempts
        error.args = (str(error),)
        if attempts > 1:
            logger.warning("Giving up on Salesforce request", extra={"error": type(error).__name__,
                                                                      "path": error.path, "attempts": attempts})
        return error
