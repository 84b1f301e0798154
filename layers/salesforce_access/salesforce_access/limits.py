"""API allocation: the ``Sforce-Limit-Info`` header, parsed on every response, and the guard built on it.

Salesforce sends no Retry-After or rate-limit headers; ``api-usage=used/max`` (rolling 24 h) is the only
runtime quota signal, so long jobs check it to stop cleanly before the org runs dry.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from aws_lambda_powertools.metrics import MetricUnit

from salesforce_access.observability import logger, metrics

_API_USAGE = re.compile(r"(?<![\w-])api-usage=(\d+)/(\d+)")


class ApiUsage(NamedTuple):
    """Daily API requests used and allowed, as last reported by Salesforce."""

    used: int
    max: int

    @property
    def share(self) -> float:
        """Fraction of the allocation used (0.0-1.0+); 1.0 when the maximum is 0."""
        return self.used / self.max if self.max else 1.0


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """Parse ``Sforce-Limit-Info`` (e.g. ``api-usage=18/5000; per-app-api-usage=...``)."""
    if not header:
        return None
    match = _API_USAGE.search(header)
    return ApiUsage(int(match.group(1)), int(match.group(2))) if match else None


class UsageTracker:
    """Remembers the latest usage seen by this container and publishes it as a metric."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._usage: ApiUsage | None = None
        self._seen_at: float | None = None

    @property
    def usage(self) -> ApiUsage | None:
        return self._usage

    def age(self) -> float | None:
        """Seconds since the usage was last reported, or None if never."""
        return None if self._seen_at is None else self._clock() - self._seen_at

    def record(self, header: str | None) -> ApiUsage | None:
        usage = parse_limit_info(header)
        if usage is None:
            return None
        with self._lock:
            changed = usage != self._usage
            self._usage, self._seen_at = usage, self._clock()
        if changed:
            metrics.add_metric(name="SalesforceApiRequestsUsed", unit=MetricUnit.Count, value=usage.used)
            metrics.add_metric(
                name="SalesforceApiUsagePercent", unit=MetricUnit.Percent, value=round(usage.share * 100, 2)
            )
            logger.debug("Salesforce API usage", extra={"api_used": usage.used, "api_max": usage.max})
        return usage
