"""A circuit breaker per warm container.

Written here (about 50 lines) instead of using pybreaker: pybreaker would be one more dependency for the
layer and the development lock file for the same closed/open/half-open logic, and this one reports the
seconds until the next trial, which becomes the 503's Retry-After header. State lives in the container, so
each concurrent container learns on its own that the ERP is down (docs/request-reply.md, "Circuit breaker").
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; after ``reset_seconds`` lets one trial call
    through (half-open): its success closes the circuit, its failure opens it for another period."""

    def __init__(self, failure_threshold: int, reset_seconds: float, clock: Callable[[], float] = time.monotonic,
                 on_open: Callable[[], None] | None = None):
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.on_open = on_open  # called (outside the lock) each time the circuit opens: a metric, a log line
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return CLOSED
        return HALF_OPEN if self._clock() - self._opened_at >= self.reset_seconds else OPEN

    def allow(self) -> bool:
        """May a call go to the ERP now? In half-open state only one trial call at a time."""
        with self._lock:
            state = self._state()
            if state == CLOSED:
                return True
            if state == HALF_OPEN and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            return False

    def retry_after(self) -> int:
        """Whole seconds until a trial call will be allowed (at least 1)."""
        with self._lock:
            if self._opened_at is None:
                return 1
            return max(1, math.ceil(self.reset_seconds - (self._clock() - self._opened_at)))

    def record_success(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._trial_in_flight = 0, None, False

    def record_failure(self) -> bool:
        """Count a failure; True if it opened (or re-opened) the circuit."""
        with self._lock:
            self._failures += 1
            trial_failed = self._trial_in_flight
            self._trial_in_flight = False
            opened = trial_failed or (self._opened_at is None and self._failures >= self.failure_threshold)
            if opened:
                self._opened_at = self._clock()
        if opened and self.on_open is not None:
            self.on_open()
        return opened
