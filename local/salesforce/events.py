"""Platform events: publishing with replay ids, retention, and delivery to local subscribers."""

from __future__ import annotations

import json
import threading
import uuid
from typing import TYPE_CHECKING

from .http import Router
from .schema import SObjectType
from .values import format_datetime, utc_now

if TYPE_CHECKING:
    from .app import EmulatorApp

_TABLE = """
CREATE TABLE IF NOT EXISTS platform_events (
    replay_id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    payload TEXT NOT NULL,
    event_uuid TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS platform_events_by_channel ON platform_events (channel, replay_id);
"""


class EventBus:
    """Events are kept in SQLite (retained like the 72-hour high-volume bus) with increasing replay ids."""

    def __init__(self, app: EmulatorApp):
        self.app = app
        app.store.executescript(_TABLE)
        self.published = threading.Condition()

    def publish(self, obj: SObjectType, body: object, user_id: str | None) -> dict:
        """Validate and store one event; returns its payload plus ``publish_id`` and ``EventUuid``."""
        from .errors import ApiError

        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object of field values")
        payload = self.app.records.build_fields(obj, body)
        payload["CreatedDate"] = format_datetime(utc_now())
        payload["CreatedById"] = user_id
        event_uuid = str(uuid.uuid4())
        channel = f"/event/{obj.name}"
        rows = self.app.store.execute(
            "INSERT INTO platform_events (channel, payload, event_uuid) VALUES (?, ?, ?) RETURNING replay_id",
            (channel, json.dumps(payload), event_uuid),
        )
        with self.published:
            self.published.notify_all()
        return {**payload, "ReplayId": rows[0][0], "EventUuid": event_uuid,
                "publish_id": self.app.id_factory.new(obj.key_prefix)}

    def since(self, channel: str, replay_id: int, limit: int = 1000) -> list[dict]:
        """Events of a channel after ``replay_id`` (-1: none retained, -2: all), CometD-shaped."""
        if replay_id == -1:
            return []
        after = 0 if replay_id == -2 else replay_id
        rows = self.app.store.execute(
            "SELECT replay_id, payload, event_uuid FROM platform_events WHERE channel = ? AND replay_id > ? "
            "ORDER BY replay_id LIMIT ?", (channel, after, limit))
        return [{"channel": channel,
                 "data": {"schema": channel.rsplit("/", 1)[-1] + "-schema", "payload": json.loads(p),
                          "event": {"EventUuid": u, "replayId": r}}} for r, p, u in rows]

    def latest_replay_id(self, channel: str) -> int:
        rows = self.app.store.execute(
            "SELECT COALESCE(MAX(replay_id), 0) FROM platform_events WHERE channel = ?", (channel,))
        return int(rows[0][0])


def register(router: Router, app: EmulatorApp) -> None:
    app.events = EventBus(app)  # type: ignore[attr-defined]
