"""Per-container stock cache: fresh for ``ttl_seconds``, then kept up to ``max_stale_seconds`` to answer
when the ERP fails (stale-if-error).

Not cachetools' TTLCache: it evicts entries when they expire, and stale-if-error needs exactly those.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class StaleCache(Generic[V]):
    def __init__(self, ttl_seconds: float, max_stale_seconds: float, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl_seconds = ttl_seconds
        self.max_stale_seconds = max_stale_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0 or self.max_stale_seconds > 0

    def put(self, key: str, value: V) -> None:
        if not self.enabled:
            return
        self._entries[key] = (self._clock(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)  # least recently stored first

    def fresh(self, key: str) -> V | None:
        return self._get(key, self.ttl_seconds)

    def stale(self, key: str) -> V | None:
        """The value if stored within ttl + max staleness (for stale-if-error)."""
        return self._get(key, self.ttl_seconds + self.max_stale_seconds)

    def _get(self, key: str, max_age: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] >= max_age:
            return None
        return entry[1]

    def clear(self) -> None:
        self._entries.clear()
