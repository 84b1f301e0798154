"""A small CometD long-polling subscriber for platform events, for tests and the demo.

It shows what a UI subscribed through ``lightning/empApi`` would see: messages in the Streaming API's
``{"data": {"schema", "payload", "event": {"replayId", "EventUuid"}}, "channel"}`` shape. It works
against the emulator or a real org (``/cometd/{version}`` with the REST access token)::

    with EventSubscriber(instance_url, token, ca_bundle, "/event/Shipment_Status__e", replay_id=-2) as sub:
        message = sub.wait_for(lambda m: m["data"]["payload"]["Status__c"] == "Delivered", timeout=10)
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator

import requests

REQUEST_TIMEOUT = 10.0  # seconds for any exchange that is not a long poll


class StreamingError(Exception):
    """The server refused a Bayeux exchange; ``reply`` is its failure message, ``status`` the HTTP status."""

    def __init__(self, reply: dict, status: int = 200):
        super().__init__(f"{reply.get('channel', 'cometd')}: {reply.get('error', 'failed')} (HTTP {status})")
        self.reply = reply
        self.status = status

    @property
    def error(self) -> str:
        return str(self.reply.get("error", ""))


class EventSubscriber:
    """Subscribes to one channel from a replay id and returns the events each long poll delivers.

    ``replay_id`` follows the Streaming API: -1 only new events, -2 every retained event, N events after
    N. It advances to the last delivered event, so when the server forgets the client (``403::Unknown
    client`` with reconnect advice ``handshake``) the subscriber handshakes again and resumes where it
    stopped instead of losing or repeating events.
    """

    def __init__(self, instance_url: str, access_token: str, ca_bundle: str, channel: str, replay_id: int = -1,
                 api_version: str = "62.0"):
        self.url = f"{instance_url.rstrip('/')}/cometd/{api_version}"
        self.channel = channel
        self.replay_id = replay_id
        self.client_id: str | None = None
        self.subscribed = False
        self._ids = itertools.count(1)
        self.session = requests.Session()
        self.session.verify = ca_bundle
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override verify
        self.session.headers["Authorization"] = f"Bearer {access_token}"

    # -- protocol --------------------------------------------------------------------------------

    def _send(self, message: dict, timeout: float = REQUEST_TIMEOUT) -> list[dict]:
        message = {**message, "id": str(next(self._ids))}
        resp = self.session.post(self.url, json=[message], timeout=timeout)
        try:
            replies = resp.json()
        except ValueError:
            replies = None
        if not isinstance(replies, list):
            raise StreamingError({"channel": message["channel"], "error": resp.text[:200]}, resp.status_code)
        if resp.status_code != 200:
            raise StreamingError(replies[0] if replies else {"channel": message["channel"]}, resp.status_code)
        return replies

    @staticmethod
    def _reply(replies: list[dict], channel: str) -> dict:
        for reply in replies:
            if reply.get("channel") == channel and "data" not in reply:
                return reply
        raise StreamingError({"channel": channel, "error": "no reply for this channel"})

    def handshake(self) -> str:
        """Open a CometD session; returns the server's clientId."""
        replies = self._send({"channel": "/meta/handshake", "version": "1.0", "minimumVersion": "1.0",
                              "supportedConnectionTypes": ["long-polling"]})
        reply = self._reply(replies, "/meta/handshake")
        if not reply.get("successful"):
            raise StreamingError(reply)
        self.client_id = reply["clientId"]
        self.subscribed = False
        return self.client_id

    def subscribe(self) -> dict:
        """Subscribe to the channel from ``replay_id`` (the replay extension); handshakes first if needed."""
        if self.client_id is None:
            self.handshake()
        replies = self._send({"channel": "/meta/subscribe", "clientId": self.client_id,
                              "subscription": self.channel, "ext": {"replay": {self.channel: self.replay_id}}})
        reply = self._reply(replies, "/meta/subscribe")
        if not reply.get("successful"):
            raise StreamingError(reply)
        self.subscribed = True
        return reply

    def poll(self, timeout: float = 10.0) -> list[dict]:
        """One long poll: the events delivered within ``timeout`` seconds (an empty list if none came)."""
        if not self.subscribed:
            self.subscribe()
        replies = self._send({"channel": "/meta/connect", "clientId": self.client_id,
                              "connectionType": "long-polling", "advice": {"timeout": int(timeout * 1000)}},
                             timeout=timeout + REQUEST_TIMEOUT)
        events = [r for r in replies if r.get("channel") == self.channel and "data" in r]
        if events:
            self.replay_id = events[-1]["data"]["event"]["replayId"]
        reply = self._reply(replies, "/meta/connect")
        if not reply.get("successful"):
            if reply.get("advice", {}).get("reconnect") != "handshake":
                raise StreamingError(reply)
            self.client_id = None  # the server forgot us: the next poll handshakes and resubscribes
            self.subscribed = False
        return events

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        """The first delivered message for which ``predicate`` is true; TimeoutError if none in time."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            for message in self.poll(min(remaining, 5.0)):
                if predicate(message):
                    return message
        raise TimeoutError(f"no matching message on {self.channel} within {timeout} s")

    def __iter__(self) -> Iterator[dict]:
        """Every message, forever: for a demo loop that prints what a UI would see."""
        while True:
            yield from self.poll()

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Disconnect (best effort: the server forgets idle clients anyway) and close the HTTP session."""
        if self.client_id is not None:
            with contextlib.suppress(requests.RequestException, StreamingError):
                self._send({"channel": "/meta/disconnect", "clientId": self.client_id})
            self.client_id = None
        self.session.close()

    def __enter__(self) -> EventSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
