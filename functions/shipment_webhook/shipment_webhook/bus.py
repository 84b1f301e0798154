"""Adapter: PutEvents on the `logistics` bus, 10 entries per call (the API's maximum).

PutEvents can succeed as a call while refusing some entries (``FailedEntryCount``, e.g. throttling); those
entries are sent again, a bounded number of times, and the call only fails if some never get through.
Sending an event twice is harmless: the publisher ignores a status it already has.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shipment_webhook.models import ShipmentStatusChanged

DETAIL_TYPE = "ShipmentStatusChanged"
SOURCE = "logistics.webhook"
ENTRIES_PER_CALL = 10


class BusUnavailable(RuntimeError):
    """Some events could not be put on the bus; the caller should send the request again."""

    def __init__(self, message: str, failed: int):
        super().__init__(message)
        self.failed = failed


@dataclass(frozen=True)
class LogisticsBus:
    client: Any
    bus_name: str
    attempts: int = 3
    sleep: Callable[[float], None] = time.sleep

    def put(self, events: Sequence[ShipmentStatusChanged], *, source: str = SOURCE) -> list[str]:
        """Put every event on the bus; returns their EventBridge ids in request order."""
        entries = [{"EventBusName": self.bus_name, "Source": source, "DetailType": DETAIL_TYPE,
                    "Detail": event.detail()} for event in events]
        ids: list[str | None] = [None] * len(entries)
        for start in range(0, len(entries), ENTRIES_PER_CALL):
            self._put_chunk(entries, list(range(start, min(start + ENTRIES_PER_CALL, len(entries)))), ids)
        return [event_id for event_id in ids if event_id is not None]

    def _put_chunk(self, entries: list[dict[str, str]], pending: list[int], ids: list[str | None]) -> None:
        last_error = ""
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(0.1 * 2 ** attempt)
            try:
                response = self.client.put_events(Entries=[entries[i] for i in pending])
            except (BotoCoreError, ClientError) as exc:
                last_error = type(exc).__name__
                continue
            still: list[int] = []
            for index, result in zip(pending, response["Entries"], strict=True):
                if result.get("EventId"):
                    ids[index] = result["EventId"]
                else:
                    still.append(index)
                    last_error = result.get("ErrorCode", "failed")
            pending = still
            if not pending:
                return
        raise BusUnavailable(f"{len(pending)} event(s) not accepted by the bus ({last_error})", len(pending))
