"""Platform events: publishing with replay ids, retention, and delivery to local subscribers.

Delivery speaks the Streaming API's CometD/Bayeux long-polling protocol at ``POST /cometd/{version}``
(platform_events_subscribe_cometd.htm), so a subscriber written against the emulator talks the same
handshake/subscribe/connect sequence, replay extension and error strings as one written against an org.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .http import Request, Response, Router
from .schema import SObjectType
from .values import format_datetime, utc_now

if TYPE_CHECKING:
    from .app import EmulatorApp

_TABLE = """
CREATE TABLE IF NOT EXISTS platform_events (
    replay_id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    payload TEXT NOT NULL,
    event_uuid TEXT NOT NULL,
    published_at REAL
);
CREATE INDEX IF NOT EXISTS platform_events_by_channel ON platform_events (channel, replay_id);
"""

RETENTION_SECONDS = 72 * 3600  # high-volume platform events are kept 72 hours
EVENT_PREFIX = "/event/"


class EventBus:
    """Events are kept in SQLite (retained like the 72-hour high-volume bus) with increasing replay ids.

    ``generation`` counts publishes under the ``published`` condition so a waiting long poll can tell
    "something was published since I looked" without holding the condition while it reads the store
    (a publisher inside a store transaction holds the store lock while it notifies). An event published
    inside a transaction that rolls back (Collections with allOrNone) is never seen by a subscriber: the
    "Publish After Commit" behaviour, chosen over "Publish Immediately" [unconfirmed which applies to API
    publishes in an allOrNone request].
    """

    def __init__(self, app: EmulatorApp):
        self.app = app
        app.store.executescript(_TABLE)
        columns = {row[1] for row in app.store.execute("PRAGMA table_info(platform_events)")}
        if "published_at" not in columns:  # a state directory written before retention was tracked
            app.store.execute("ALTER TABLE platform_events ADD COLUMN published_at REAL")
        app.store.execute("UPDATE platform_events SET published_at = ? WHERE published_at IS NULL", (time.time(),))
        self.published = threading.Condition()
        self.generation = 0
        self.retention_seconds: float = RETENTION_SECONDS
        self._last_prune = 0.0
        self._schema_ids: dict[str, str] = {}

    # -- publishing --------------------------------------------------------------------------------

    def publish(self, obj: SObjectType, body: object, user_id: str | None) -> dict:
        """Validate and store one event; returns its payload plus ``publish_id`` and ``EventUuid``."""
        from .errors import ApiError

        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object of field values")
        payload = self.app.records.build_fields(obj, body)
        payload["CreatedDate"] = format_datetime(utc_now())
        payload["CreatedById"] = user_id
        event_uuid = str(uuid.uuid4())
        channel = f"{EVENT_PREFIX}{obj.name}"
        if time.time() - self._last_prune > 60:
            self.prune()
        rows = self.app.store.execute(
            "INSERT INTO platform_events (channel, payload, event_uuid, published_at) VALUES (?, ?, ?, ?) "
            "RETURNING replay_id", (channel, json.dumps(payload), event_uuid, time.time()),
        )
        self.wake()
        return {**payload, "ReplayId": rows[0][0], "EventUuid": event_uuid,
                "publish_id": self.app.id_factory.new(obj.key_prefix)}

    def wake(self) -> None:
        """Tell every waiting long poll to look again."""
        with self.published:
            self.generation += 1
            self.published.notify_all()

    def wait_after(self, generation: int, timeout: float) -> None:
        """Block until ``generation`` has moved on (something was published) or ``timeout`` passes."""
        with self.published:
            self.published.wait_for(lambda: self.generation != generation, timeout)

    def prune(self) -> None:
        """Drop events older than the retention window, remembering per channel how far they went."""
        self._last_prune = time.time()
        cutoff = time.time() - self.retention_seconds
        store = self.app.store
        with store.transaction():
            for channel, newest in store.execute(
                    "SELECT channel, MAX(replay_id) FROM platform_events WHERE published_at < ? GROUP BY channel",
                    (cutoff,)):
                store.kv_put("event_horizon", channel, int(newest))
            store.execute("DELETE FROM platform_events WHERE published_at < ?", (cutoff,))

    # -- reading -----------------------------------------------------------------------------------

    def since(self, channel: str, replay_id: int, limit: int = 1000) -> list[dict]:
        """Events of a channel after ``replay_id`` (-1: none retained, -2: all), CometD-shaped."""
        if replay_id == -1:
            return []
        after = 0 if replay_id == -2 else replay_id
        rows = self.app.store.execute(
            "SELECT replay_id, payload, event_uuid FROM platform_events WHERE channel = ? AND replay_id > ? "
            "ORDER BY replay_id LIMIT ?", (channel, after, limit))
        obj = self.event_type(channel)
        return [self._message(channel, obj, r, json.loads(p), u) for r, p, u in rows]

    def latest_replay_id(self, channel: str) -> int:
        rows = self.app.store.execute(
            "SELECT COALESCE(MAX(replay_id), 0) FROM platform_events WHERE channel = ?", (channel,))
        return max(int(rows[0][0]), self.horizon(channel))

    def horizon(self, channel: str) -> int:
        """The newest replay id that fell out of the retention window (0 if none did)."""
        value = self.app.store.kv_get("event_horizon", channel)
        return int(value) if isinstance(value, int) else 0

    def event_type(self, channel: str) -> SObjectType | None:
        """The platform event behind ``/event/Name__e``; channel names are case-sensitive."""
        if not channel.startswith(EVENT_PREFIX):
            return None
        name = channel[len(EVENT_PREFIX):]
        obj = self.app.schema.get(name)
        return obj if obj is not None and obj.is_event and obj.name == name else None

    def schema_id(self, obj: SObjectType) -> str:
        """An opaque 22-character id that changes when the event's fields change, like Salesforce's."""
        if obj.name not in self._schema_ids:
            shape = [(f.name, f.type) for f in obj.fields.values()]
            digest = hashlib.sha256(json.dumps([obj.name, shape]).encode()).digest()[:16]
            self._schema_ids[obj.name] = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        return self._schema_ids[obj.name]

    def _message(self, channel: str, obj: SObjectType | None, replay_id: int, stored: dict, event_uuid: str) -> dict:
        payload: dict = {"CreatedDate": _cometd_datetime(stored.get("CreatedDate")),
                         "CreatedById": stored.get("CreatedById")}
        if obj is None:  # the event was dropped from the schema after publishing: deliver what was stored
            payload.update({k: v for k, v in stored.items() if k not in payload})
        else:
            # Every field of the event is in the payload, unset ones as null [unconfirmed: the documented
            # example only shows set fields]; subscribers reading payload.get(...) see the same either way.
            for f in obj.fields.values():
                if not f.system:
                    value = stored.get(f.name)
                    payload[f.name] = _cometd_datetime(value) if f.type == "datetime" else value
        schema = self.schema_id(obj) if obj is not None else channel.rsplit("/", 1)[-1]
        return {"data": {"schema": schema, "payload": payload,
                         "event": {"EventUuid": event_uuid, "replayId": replay_id}},
                "channel": channel}


def _cometd_datetime(value: object) -> object:
    """CometD JSON writes datetimes as ``2017-04-09T18:31:40.517Z`` (doc example), REST as ``...+0000``."""
    if isinstance(value, str) and value.endswith("+0000"):
        return value[:-5] + "Z"
    return value


# -- CometD / Bayeux long polling ------------------------------------------------------------------

MIN_COMETD_VERSION = 37.0  # "Only API versions '37.0' and later are supported" (streaming_error_codes.htm)
MAX_BODY_BYTES = 32_768  # documented maximum request body; larger -> 413 Maximum Request Size Exceeded
CONNECT_TIMEOUT_MS = 110_000  # the Streaming API's long-poll timeout, sent in the first connect advice
CLIENT_TTL_SECONDS = 40.0  # a client that does not reconnect within 40 s of a response is expired
MAX_EVENTS_PER_CONNECT = 1000
_UNKNOWN_CLIENT = "403::Unknown client"  # Salesforce's string; vanilla CometD servers say 402::Unknown client
_REPLAY_INVALID = ("400::The replayId {{{0}}} you provided was invalid. Please provide a valid ID, -2 to "
                   "replay all events, or -1 to replay only new events.")


class BayeuxError(Exception):
    """A request the endpoint answers as a whole (not per message) with an HTTP error status."""

    def __init__(self, status: int, error: str):
        super().__init__(error)
        self.status = status
        self.error = error


@dataclass
class StreamingClient:
    """One handshaken CometD client: whose it is and, per channel, the last replay id delivered."""

    client_id: str
    user_id: str
    positions: dict[str, int] = field(default_factory=dict)
    last_seen: float = field(default_factory=time.monotonic)
    polling: int = 0  # long polls in progress: a waiting client is never expired
    connected: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class CometD:
    """The Streaming API endpoint for local subscribers: handshake, subscribe with replay, long-poll connect.

    ``max_wait_seconds`` caps how long a connect waits for events (Salesforce: 110 s); a client can ask
    for less with the Bayeux ``advice.timeout`` (milliseconds) on its connect, which tests use to keep
    long polls short. ``client_ttl_seconds`` is how long a client may stay away before it is forgotten.
    """

    def __init__(self, app: EmulatorApp, bus: EventBus):
        self.app = app
        self.bus = bus
        self.max_wait_seconds: float = CONNECT_TIMEOUT_MS / 1000
        self.client_ttl_seconds: float = CLIENT_TTL_SECONDS
        self._clients: dict[str, StreamingClient] = {}
        self._lock = threading.Lock()

    # -- HTTP ------------------------------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        """One POST of a Bayeux message batch; per-message failures are replies, request failures HTTP errors."""
        messages = _parse_batch(req.body)
        try:
            self._check_version(req.match.get("version"))
            if len(req.body) > MAX_BODY_BYTES:
                raise BayeuxError(413, "413::Maximum Request Size Exceeded")
            user_id = self._authenticate(req, messages)
            if isinstance(messages, BayeuxError):
                raise messages
        except _AuthFailure as failure:
            return Response(401, failure.replies)
        except BayeuxError as exc:
            return Response(exc.status, [_failure(None, None, exc.error)])
        replies: list[dict] = []
        for message in messages:
            replies.extend(self._dispatch(message, user_id))
        return Response(200, replies)

    def missing_version(self, req: Request) -> Response:
        return Response(400, [_failure(None, None, "400::API version in the URI is mandatory. URI format: "
                                                   f"'/cometd/{_default_version()}'")])

    def _check_version(self, version: str | None) -> None:
        from .app import SUPPORTED_VERSIONS

        if version is None or version not in SUPPORTED_VERSIONS or float(version) < MIN_COMETD_VERSION:
            raise BayeuxError(400, f"400::Unsupported API version. Only API versions '{MIN_COMETD_VERSION}' and "
                                   f"later are supported. URI format: '/cometd/{_default_version()}'")

    def _authenticate(self, req: Request, messages: list[dict] | BayeuxError) -> str:
        """The token's user, or a 401 whose replies say why the way the Streaming API does per channel.

        The reply texts are documented (streaming_handling_errors.htm); answering with HTTP 401 rather than
        200 is [unconfirmed] and chosen so that plain HTTP clients notice too.
        """
        header = req.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() in ("bearer", "oauth") and token:
            user_id = self.app.token_user(token)
            if user_id is not None:
                return user_id
            reason = "401::Authentication invalid"
        else:
            reason = "401::Request requires authentication"
        batch = messages if isinstance(messages, list) else [{}]
        replies = []
        for message in batch:
            channel = message.get("channel") if isinstance(message, dict) else None
            if channel == "/meta/handshake":
                reply = _failure(message, None, "403::Handshake denied", reconnect="none")
                reply["ext"] = {"sfdc": {"failureReason": reason}}
            else:
                msg = message if isinstance(message, dict) else None
                reply = _failure(msg, msg.get("clientId") if msg else None, reason, reconnect="none")
            replies.append(reply)
        raise _AuthFailure(replies)

    # -- messages --------------------------------------------------------------------------------

    def _dispatch(self, message: object, user_id: str) -> list[dict]:
        if not isinstance(message, dict):
            return [_failure(None, None, "400::A Bayeux message must be a JSON object")]
        channel = message.get("channel")
        if not isinstance(channel, str) or not channel:
            return [_failure(message, None, "400::Channel name not specified")]
        if channel == "/meta/handshake":
            return [self._handshake(message, user_id)]
        if not channel.startswith("/meta/"):
            # Platform events are published through the APIs, not by CometD clients.
            return [_failure(message, message.get("clientId"), "403::Publish denied")]
        handler = {"/meta/subscribe": self._subscribe, "/meta/unsubscribe": self._unsubscribe,
                   "/meta/connect": self._connect, "/meta/disconnect": self._disconnect}.get(channel)
        if handler is None:
            return [_failure(message, message.get("clientId"), f"400::Unknown meta channel {channel}")]
        client = self._client(message.get("clientId"))
        if client is None:
            reply = _failure(message, None, _UNKNOWN_CLIENT, reconnect="handshake")
            if channel in ("/meta/subscribe", "/meta/unsubscribe"):
                reply["subscription"] = message.get("subscription")
            return [reply]
        try:
            return handler(message, client)
        finally:
            client.last_seen = time.monotonic()

    def _handshake(self, message: dict, user_id: str) -> dict:
        types = message.get("supportedConnectionTypes")
        if types is not None and (not isinstance(types, list) or "long-polling" not in types):
            shown = ",".join(map(str, types)) if isinstance(types, list) else types
            return _failure(message, None, f"400::Invalid connection type {shown}", reconnect="none")
        client = StreamingClient(client_id=_new_client_id(), user_id=user_id)
        with self._lock:
            self._expire()
            self._clients[client.client_id] = client
        reply = {"ext": {"replay": True, "payload.format": True}, "minimumVersion": "1.0",
                 "clientId": client.client_id, "supportedConnectionTypes": ["long-polling"],
                 "channel": "/meta/handshake", "version": "1.0", "successful": True}
        return _with_id(reply, message)

    def _subscribe(self, message: dict, client: StreamingClient) -> list[dict]:
        channel = message.get("subscription")
        error = _channel_error(channel)
        # The documented text (streaming_error_codes.htm), not vanilla CometD's 403::Unknown channel.
        if error is None and self.bus.event_type(channel) is None:  # type: ignore[arg-type]
            error = f"400::The channel you requested to subscribe to does not exist {{{channel}}}"
        if error is not None:
            reply = _failure(message, client.client_id, error)
            reply["subscription"] = channel
            return [reply]
        ext = message.get("ext")
        replay_map = ext.get("replay") if isinstance(ext, dict) else None
        requested = replay_map.get(channel, -1) if isinstance(replay_map, dict) else -1
        position = self._start_position(channel, requested)  # type: ignore[arg-type]
        if position is None:
            reply = _failure(message, client.client_id, _REPLAY_INVALID.format(requested))
            reply["subscription"] = channel
            return [reply]
        with client.lock:
            client.positions[channel] = position  # type: ignore[index]
        return [_with_id({"clientId": client.client_id, "channel": "/meta/subscribe", "subscription": channel,
                          "successful": True}, message)]

    def _start_position(self, channel: str, requested: object) -> int | None:
        """-1: after the newest event, -2: everything still retained, N: after N if N is still retained."""
        if isinstance(requested, bool) or not isinstance(requested, int):
            return None
        self.bus.prune()
        horizon = self.bus.horizon(channel)
        if requested == -1:
            return self.bus.latest_replay_id(channel)
        if requested == -2:
            return horizon
        if requested < horizon or requested > self.bus.latest_replay_id(channel):
            return None
        return requested

    def _unsubscribe(self, message: dict, client: StreamingClient) -> list[dict]:
        channel = message.get("subscription")
        error = _channel_error(channel)
        if error is not None:
            reply = _failure(message, client.client_id, error)
            reply["subscription"] = channel
            return [reply]
        with client.lock:
            client.positions.pop(channel, None)  # type: ignore[arg-type]
        return [_with_id({"clientId": client.client_id, "channel": "/meta/unsubscribe", "subscription": channel,
                          "successful": True}, message)]

    def _connect(self, message: dict, client: StreamingClient) -> list[dict]:
        connection_type = message.get("connectionType")
        if connection_type != "long-polling":
            return [_failure(message, client.client_id, f"400::Invalid connection type {connection_type}")]
        wait = self.max_wait_seconds
        advice = message.get("advice")
        if isinstance(advice, dict):
            asked = advice.get("timeout")
            if isinstance(asked, (int, float)) and not isinstance(asked, bool) and asked >= 0:
                wait = min(wait, asked / 1000)
        deadline = time.monotonic() + wait
        client.polling += 1
        try:
            while True:
                generation = self.bus.generation
                events = self._deliver(client)
                remaining = deadline - time.monotonic()
                if events or remaining <= 0 or self._client(client.client_id) is None:
                    break
                self.bus.wait_after(generation, remaining)
        finally:
            client.polling -= 1
        reply: dict = {"clientId": client.client_id, "channel": "/meta/connect", "successful": True}
        if not client.connected:
            client.connected = True
            reply["advice"] = {"interval": 0, "timeout": CONNECT_TIMEOUT_MS, "reconnect": "retry"}
        return [*events, _with_id(reply, message)]

    def _deliver(self, client: StreamingClient) -> list[dict]:
        """The client's undelivered events across its channels, in replay order; advances its positions."""
        with client.lock:
            found: list[dict] = []
            for channel, position in client.positions.items():
                found.extend(self.bus.since(channel, position, MAX_EVENTS_PER_CONNECT))
            found.sort(key=lambda m: m["data"]["event"]["replayId"])
            found = found[:MAX_EVENTS_PER_CONNECT]
            for message in found:
                client.positions[message["channel"]] = message["data"]["event"]["replayId"]
            return found

    def _disconnect(self, message: dict, client: StreamingClient) -> list[dict]:
        with self._lock:
            self._clients.pop(client.client_id, None)
        self.bus.wake()  # a connect still waiting for this client returns now
        return [_with_id({"clientId": client.client_id, "channel": "/meta/disconnect", "successful": True},
                         message)]

    # -- clients ---------------------------------------------------------------------------------

    def _client(self, client_id: object) -> StreamingClient | None:
        if not isinstance(client_id, str):
            return None
        with self._lock:
            self._expire()
            return self._clients.get(client_id)

    def _expire(self) -> None:
        now = time.monotonic()
        for cid in [cid for cid, c in self._clients.items()
                    if c.polling == 0 and now - c.last_seen > self.client_ttl_seconds]:
            del self._clients[cid]


class _AuthFailure(Exception):
    def __init__(self, replies: list[dict]):
        super().__init__("authentication failed")
        self.replies = replies


def _parse_batch(body: bytes) -> list | BayeuxError:
    """A Bayeux request is a JSON array of messages (a lone object is accepted as a batch of one)."""
    try:
        parsed = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        return BayeuxError(400, "400::Malformed JSON: the body must be an array of Bayeux messages")
    if isinstance(parsed, dict):
        return [parsed]
    if not isinstance(parsed, list) or not parsed:
        return BayeuxError(400, "400::The body must be a non-empty JSON array of Bayeux messages")
    return parsed


def _channel_error(channel: object) -> str | None:
    if not isinstance(channel, str) or not channel:
        return "400::Channel name not specified"
    if not channel.startswith("/"):
        return "400::Channel subscriptions must start with a leading '/'"
    return None


def _failure(message: dict | None, client_id: object, error: str, *, reconnect: str | None = None) -> dict:
    reply: dict = {}
    if isinstance(client_id, str):
        reply["clientId"] = client_id
    if reconnect is not None:
        reply["advice"] = {"reconnect": reconnect, "interval": 0}
    channel = message.get("channel") if isinstance(message, dict) else None
    if isinstance(channel, str):
        reply["channel"] = channel
    reply.update({"error": error, "successful": False})
    return _with_id(reply, message)


def _with_id(reply: dict, message: dict | None) -> dict:
    if isinstance(message, dict) and "id" in message:
        reply["id"] = message["id"]
    return reply


def _new_client_id() -> str:
    """Salesforce client ids look like ``1q1ib66fvm7kli1gfoauu95i78g``: lower-case base-36."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return "".join(secrets.choice(alphabet) for _ in range(27))


def _default_version() -> str:
    from .app import DEFAULT_API_VERSION

    return DEFAULT_API_VERSION


def register(router: Router, app: EmulatorApp) -> None:
    app.events = EventBus(app)  # type: ignore[attr-defined]
    app.cometd = CometD(app, app.events)  # type: ignore[attr-defined]
    # Not API routes: the Streaming API authenticates itself and does not count against API requests.
    router.add("POST", r"/cometd/(?P<version>\d+\.\d+)/?", app.cometd.handle, api=False)  # type: ignore[attr-defined]
    router.add("POST", r"/cometd/?", app.cometd.missing_version, api=False)  # type: ignore[attr-defined]
