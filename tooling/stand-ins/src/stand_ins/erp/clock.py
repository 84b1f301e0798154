"""Timestamps in the ERP's one format: UTC, ISO 8601, microseconds, ``Z`` suffix."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now_iso() -> str:
    return format_time(datetime.now(UTC))


def parse_time(text: str) -> datetime:
    """ISO 8601 with a ``Z`` or an offset; a naive time is refused (its zone would be a guess)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("the time has no zone; add Z or an offset")
    return moment.astimezone(UTC)


class StrictClock:
    """Write stamps that never repeat or go back, so ``updated_at`` orders every change (watermarks)."""

    def __init__(self) -> None:
        self._last = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def stamp(self) -> datetime:
        with self._lock:
            now = datetime.now(UTC)
            if now <= self._last:
                now = self._last + timedelta(microseconds=1)
            self._last = now
            return now
