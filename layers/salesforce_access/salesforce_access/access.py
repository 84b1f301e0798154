"""`SalesforceAccess`: one object per org and container that owns the secret, token, session and APIs.

Everything is lazy: creating it reads nothing and calls nothing, the first call loads the secret and
fetches a token, and warm invocations reuse both. Call `bind` with the Lambda context at the start of
each invocation so retries and polling stay inside the remaining time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from salesforce_access.auth import AccessToken, TokenManager
from salesforce_access.budget import Budget, PollPolicy, RetryPolicy, Timeouts
from salesforce_access.bulk import BulkApi
from salesforce_access.collections import Collections
from salesforce_access.composite import CompositeResult, Subrequest, composite_payload
from salesforce_access.config import SalesforceSecret, load_secret, parse_secret
from salesforce_access.errors import AllocationExhausted, ConfigurationError
from salesforce_access.limits import ApiUsage, UsageTracker
from salesforce_access.observability import logger, tracer
from salesforce_access.redaction import register_secret
from salesforce_access.transport import SalesforceSession
from salesforce_access.volume import Api, choose_api

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import requests
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from simple_salesforce import Salesforce

DEFAULT_SAFETY_MARGIN = 5.0  # seconds kept back from the invocation for the handler to finish
DEFAULT_UNBOUND_BUDGET = 60.0  # per operation, when no Lambda context was bound (scripts, tests)
DEFAULT_MAX_SHARE = 0.8
USAGE_MAX_AGE = 300.0  # seconds after which ensure_allocation asks /limits again


class SalesforceAccess:
    """Authenticated, resilient access to one Salesforce org.

    `secret` is a Secrets Manager id/ARN, or an already parsed secret (mapping or model) for tests and
    scripts. `verify` is passed to requests (a CA bundle path for the local emulator). `sleep` and `clock`
    stand in for ``time.sleep`` and ``time.monotonic`` (backoff, polling, budgets, usage age), so tests
    can run a time budget without waiting for it.
    """

    def __init__(
        self,
        secret: str | SalesforceSecret | Mapping[str, Any],
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        safety_margin: float = DEFAULT_SAFETY_MARGIN,
        unbound_budget: float = DEFAULT_UNBOUND_BUDGET,
        verify: bool | str = True,
        secret_max_age: int | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret_source = secret
        self._secret_max_age = secret_max_age
        self._safety_margin = safety_margin
        self._unbound_budget = unbound_budget
        self._bound: Budget | None = None
        self._clock = clock
        self._usage = UsageTracker(clock)
        extra = {"sleep": sleep} if sleep else {}
        self.session = SalesforceSession(
            usage=self._usage, budget=self.budget, timeouts=timeouts, retry=retry, verify=verify, **extra
        )
        self.tokens = TokenManager(self._load_secret, self.session.post_token_form)
        self.session.tokens = self.tokens
        self._poll = poll
        self._sleep = sleep
        self._client: Salesforce | None = None
        self._client_token: AccessToken | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def bind(self, context: LambdaContext) -> SalesforceAccess:
        """Start an invocation: retries and polling end `safety_margin` seconds before the Lambda times out."""
        self._bound = Budget.from_context(context, self._safety_margin, self._clock)
        return self

    def budget(self) -> Budget:
        """The bound invocation budget, or a fresh `unbound_budget` one outside Lambda."""
        return self._bound if self._bound is not None else Budget.seconds(self._unbound_budget, self._clock)

    @cached_property
    def settings(self) -> SalesforceSecret:
        """The validated secret (loaded on first access)."""
        return self._load_secret(False)

    def _load_secret(self, force_fetch: bool) -> SalesforceSecret:
        source = self._secret_source
        if isinstance(source, str):
            secret = load_secret(source, force_fetch=force_fetch, max_age=self._secret_max_age)
        elif isinstance(source, BaseModel):
            for value in source.secret_values():
                register_secret(value)
            secret = source
        else:
            secret = parse_secret(source)
        self.__dict__["settings"] = secret
        return secret

    # -- URLs ---------------------------------------------------------------------------------------

    @property
    def instance_url(self) -> str:
        return self.tokens.current().instance_url

    @property
    def api_version(self) -> str:
        return self.settings.api_version

    @property
    def user_id(self) -> str | None:
        """The Id of the user the token acts as (the integration user), from the token response's identity URL.

        Fetches a token if none is held yet (no extra request otherwise). None only if Salesforce sent no
        identity URL. Use it to recognise the integration's own writes (``LastModifiedById``).
        """
        return self.tokens.current().user_id

    @property
    def org_id(self) -> str | None:
        """The org's Id (``00D...``), from the same identity URL."""
        return self.tokens.current().org_id

    def url(self, path: str) -> str:
        """Absolute URL for a path relative to ``/services/data/vXX.X/``, an absolute path, or a URL."""
        if path.startswith("https://"):
            return path
        if path.startswith("/"):
            return self.instance_url + path
        return f"{self.instance_url}/services/data/v{self.api_version}/{path}"

    # -- raw REST -----------------------------------------------------------------------------------

    def send(self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any) -> requests.Response:
        """Authenticated request with the full retry/re-auth policy; returns the response (status < 400)."""
        return self.session.request(method, self.url(path), idempotent=idempotent, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """REST call returning the parsed JSON body (None for 204). Errors raise typed SalesforceErrors."""
        response = self.send(method, path, json=json, params=params, headers=dict(headers or {}),
                             idempotent=idempotent)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def query(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Stream the records of a REST query, following ``nextRecordsUrl`` one page (≤ 2,000) at a time."""
        page = self.request("GET", "queryAll" if include_deleted else "query", params={"q": soql})
        while True:
            yield from page.get("records", [])
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = self.request("GET", next_url)

    def limits(self) -> dict[str, Any]:
        """``GET /limits``: every org limit with Max and Remaining."""
        return self.request("GET", "limits")

    # -- batch APIs ---------------------------------------------------------------------------------

    @cached_property
    def collections(self) -> Collections:
        return Collections(self)

    @cached_property
    def bulk(self) -> BulkApi:
        extra = {"sleep": self._sleep} if self._sleep else {}
        return BulkApi(self, poll=self._poll, **extra)

    @tracer.capture_method(capture_response=False)
    def composite(
        self,
        subrequests: Sequence[Subrequest | Mapping[str, Any]],
        *,
        all_or_none: bool = True,
        collate_subrequests: bool = False,
    ) -> CompositeResult:
        """POST /composite (≤ 25 subrequests, one API request). Check ``.ok`` or call ``raise_for_errors``."""
        payload = composite_payload(subrequests, self.api_version, all_or_none=all_or_none,
                                    collate_subrequests=collate_subrequests)
        read_only = all(item["method"].upper() == "GET" for item in payload["compositeRequest"])
        body = self.request("POST", "composite", json=payload, idempotent=read_only)
        return CompositeResult.model_validate({"responses": body.get("compositeResponse", [])})

    def api_for(self, record_count: int, threshold: int | None = None) -> Api:
        """``"collections"`` or ``"bulk"``: the cheapest API for `record_count` records (see volume.py)."""
        return choose_api(record_count, threshold)

    # -- simple-salesforce --------------------------------------------------------------------------

    @property
    def client(self) -> Salesforce:
        """simple-salesforce for calls the layer has no API for, on the shared session.

        Every call it makes gets the current token, the timeouts, the retry and re-authentication policy,
        the budget and the usage tracking, and fails with the layer's typed errors. Built once per instance
        URL; importing simple-salesforce is paid on first use only.
        """
        token = self.tokens.current()
        if self._client is None or self._client_token is None \
                or token.instance_url != self._client_token.instance_url:
            from simple_salesforce import Salesforce  # heavy (zeep, lxml): only when a client is wanted

            self._client = Salesforce(
                instance_url=token.instance_url, session_id=token.value, session=self.session,
                version=self.api_version,
            )
            self._client_token = token
        return self._client

    # -- API allocation -----------------------------------------------------------------------------

    @property
    def api_usage(self) -> ApiUsage | None:
        """(used, max) daily API requests from the last ``Sforce-Limit-Info`` seen, or None."""
        return self._usage.usage

    def allocation_left(self, max_share: float = DEFAULT_MAX_SHARE) -> bool:
        """True while less than `max_share` of the daily allocation is used (asks /limits if unknown/stale)."""
        usage = self._usage.usage
        age = self._usage.age()
        if usage is None or age is None or age > USAGE_MAX_AGE:
            self.limits()  # the response header refreshes the tracker
            usage = self._usage.usage
        return usage is None or usage.share < max_share

    def ensure_allocation(self, max_share: float = DEFAULT_MAX_SHARE) -> None:
        """Raise AllocationExhausted when `max_share` of the daily allocation is used: lets long jobs stop cleanly."""
        if not self.allocation_left(max_share):
            usage = self._usage.usage
            assert usage is not None  # noqa: S101 - allocation_left only returns False with a known usage
            logger.warning("Salesforce API allocation guard tripped",
                           extra={"api_used": usage.used, "api_max": usage.max, "max_share": max_share})
            raise AllocationExhausted(
                f"{usage.used}/{usage.max} daily API requests used (guard at {max_share:.0%})",
                error_code="ALLOCATION_GUARD",
            )


_instances: dict[str, SalesforceAccess] = {}
_instances_lock = threading.Lock()


def get_access(secret_arn: str | None = None) -> SalesforceAccess:
    """The container's cached `SalesforceAccess` for a secret (default: ``SALESFORCE_SECRET_ARN``).

    ``SALESFORCE_CA_BUNDLE`` (optional) points requests at a CA bundle, e.g. the local emulator's.
    """
    secret_id = secret_arn or os.environ.get("SALESFORCE_SECRET_ARN")
    if not secret_id:
        raise ConfigurationError("no Salesforce secret: pass secret_arn or set SALESFORCE_SECRET_ARN")
    with _instances_lock:
        access = _instances.get(secret_id)
        if access is None:
            access = SalesforceAccess(secret_id, verify=os.environ.get("SALESFORCE_CA_BUNDLE") or True)
            _instances[secret_id] = access
        return access


def reset_access_cache() -> None:
    """Forget cached instances (tests; a Lambda container never needs it)."""
    with _instances_lock:
        _instances.clear()
