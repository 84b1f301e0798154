"""Time budget, timeouts and backoff: how long the layer may keep retrying or polling.

Inside Lambda the budget comes from the invocation (remaining time minus a safety margin), so retries
stop in time for the handler to report or hand over instead of being killed mid-request.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PATCH"})
"""PATCH is idempotent in Salesforce's REST API (field update, upsert by external id). POST creates and PUT
appends data to a Bulk job, so neither is replayed after a timeout unless the caller says it is safe."""


@dataclass(frozen=True)
class Timeouts:
    """Per-request connect and read timeouts in seconds (simple-salesforce sets none by default)."""

    connect: float = 3.05
    read: float = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: sleep uniform(0, min(max_delay, base_delay * 2**n))."""

    base_delay: float = 0.5
    max_delay: float = 8.0
    max_attempts: int = 5

    def delay(self, retry_number: int, rand: Callable[[float, float], float] = random.uniform) -> float:
        return rand(0.0, min(self.max_delay, self.base_delay * (2 ** max(retry_number - 1, 0))))


@dataclass(frozen=True)
class PollPolicy:
    """Bulk job polling: delays grow from `initial` to `max_delay` (jittered), inside the time budget."""

    initial: float = 1.0
    max_delay: float = 15.0
    factor: float = 1.6

    def delay(self, poll_number: int) -> float:
        ceiling = min(self.max_delay, self.initial * self.factor**poll_number)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


class Budget:
    """A deadline on the monotonic clock; ``remaining()`` is infinite for an unbounded budget."""

    def __init__(self, deadline: float | None, clock: Callable[[], float] = time.monotonic):
        self._deadline = deadline
        self._clock = clock

    @classmethod
    def seconds(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Budget:
        return cls(clock() + seconds, clock)

    @classmethod
    def from_context(
        cls, context: LambdaContext, safety_margin: float, clock: Callable[[], float] = time.monotonic
    ) -> Budget:
        """Deadline = the invocation's remaining time minus `safety_margin` seconds."""
        remaining = context.get_remaining_time_in_millis() / 1000.0
        return cls.seconds(max(remaining - safety_margin, 0.0), clock)

    def remaining(self) -> float:
        return math.inf if self._deadline is None else max(self._deadline - self._clock(), 0.0)

    def allows(self, seconds: float) -> bool:
        return self.remaining() >= seconds
