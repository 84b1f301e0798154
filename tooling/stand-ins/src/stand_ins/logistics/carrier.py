"""A carrier that reports shipment journeys: ShipmentStatusChanged events in a chosen order, with delays,
duplicates and signature faults, sent to the webhook (signed HTTP) or straight onto an EventBridge bus."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import requests

JOURNEY = ("Label Created", "Picked Up", "In Transit", "Out for Delivery", "Delivered")
ORDERS = ("in-order", "reverse", "shuffle", "last-first")
SIGNATURE_FAULTS = ("missing_signature", "bad_signature", "stale_timestamp", "tampered_body")
FAULT_KINDS = (*SIGNATURE_FAULTS, "duplicate")
DETAIL_TYPE = "ShipmentStatusChanged"


def sign(key: str, timestamp: int | str, body: bytes) -> str:
    """The project's request signature (docs/remote-call-in.md): v1= hex HMAC-SHA256 of "v1:{ts}:" + body."""
    return "v1=" + hmac.new(key.encode(), f"v1:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


def journey(tracking_number: str, *, statuses: Sequence[str] = JOURNEY, start: datetime | None = None,
            step: timedelta = timedelta(hours=3), carrier: str = "Local Parcel", location: str | None = None,
            order_number: str | None = None) -> list[dict[str, Any]]:
    """One event per status, `step` apart from `start` (default: now minus the journey's length)."""
    begin = start or datetime.now(UTC).replace(microsecond=0) - step * len(statuses)
    events = []
    for index, status in enumerate(statuses):
        event: dict[str, Any] = {"tracking_number": tracking_number, "status": status,
                                 "status_time": (begin + step * index).isoformat().replace("+00:00", "Z"),
                                 "carrier": carrier}
        if location:
            event["location"] = location
        if order_number:
            event["order_number"] = order_number
        events.append(event)
    return events


def arrange(events: Sequence[dict[str, Any]], order: str = "in-order", *, seed: int | None = None,
            duplicates: int = 0) -> list[dict[str, Any]]:
    """The events in delivery order: as they happened, reversed, shuffled (seeded), or the last status first;
    `duplicates` extra copies of random events (at-least-once delivery), at random places."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}")
    rng = random.Random(seed)
    arranged = list(events)
    if order == "reverse":
        arranged.reverse()
    elif order == "shuffle":
        rng.shuffle(arranged)
    elif order == "last-first" and arranged:
        arranged.insert(0, arranged.pop())
    for _ in range(duplicates):
        arranged.insert(rng.randrange(len(arranged) + 1), dict(rng.choice(list(events))))
    return arranged


@dataclass
class Delivery:
    """What one send did: the events, the fault applied, and the answer (HTTP status or PutEvents result)."""

    tracking_numbers: list[str]
    statuses: list[str]
    sink: str
    status: int
    fault: str | None = None
    answer: Any = None
    sent_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sink(Protocol):
    name: str

    def deliver(self, events: list[dict[str, Any]], fault: str | None = None) -> Delivery: ...


def _delivery(events: list[dict[str, Any]], sink: str, status: int, fault: str | None, answer: Any) -> Delivery:
    return Delivery([e["tracking_number"] for e in events], [e["status"] for e in events], sink, status, fault, answer)


class WebhookSink:
    """POSTs to the webhook, signed like a well-behaved carrier unless a signature fault is applied."""

    name = "webhook"

    def __init__(self, url: str, key: str, *, timeout: float = 5.0, session: requests.Session | None = None):
        self.url = url
        self._key = key
        self.timeout = timeout
        self.session = session or requests.Session()

    def __repr__(self) -> str:  # never show the key
        return f"WebhookSink({self.url!r})"

    def deliver(self, events: list[dict[str, Any]], fault: str | None = None) -> Delivery:
        body = json.dumps(events[0] if len(events) == 1 else {"events": events}).encode()
        timestamp = int(time.time()) - (600 if fault == "stale_timestamp" else 0)
        key = "not-the-shared-key" if fault == "bad_signature" else self._key
        headers = {"Content-Type": "application/json", "X-Signature-Timestamp": str(timestamp),
                   "X-Signature": sign(key, timestamp, body)}
        if fault == "missing_signature":
            del headers["X-Signature"]
        if fault == "tampered_body":  # signed, then changed in transit
            body = body.replace(b'"status": "', b'"status": "Delivered", "was": "', 1)
        try:
            response = self.session.post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            return _delivery(events, self.name, 0, fault, f"{type(exc).__name__}")
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text[:500]
        return _delivery(events, self.name, response.status_code, fault, answer)


class BusSink:
    """PutEvents straight onto a bus, as a carrier integrated with EventBridge (or a test) would."""

    name = "bus"

    def __init__(self, client: Any, bus_name: str, source: str = "logistics.carrier"):
        self.client = client
        self.bus_name = bus_name
        self.source = source

    def deliver(self, events: list[dict[str, Any]], fault: str | None = None) -> Delivery:
        if fault in SIGNATURE_FAULTS:
            raise ValueError(f"{fault} applies to the webhook only")
        entries = [{"EventBusName": self.bus_name, "Source": self.source, "DetailType": DETAIL_TYPE,
                    "Detail": json.dumps(event)} for event in events]
        response = self.client.put_events(Entries=entries)
        status = 200 if response.get("FailedEntryCount", 0) == 0 else 207
        return _delivery(events, self.name, status, fault, {"Entries": response["Entries"],
                                                            "FailedEntryCount": response.get("FailedEntryCount", 0)})


class Carrier:
    """Sends events through a sink, `batch_size` per request, `interval` seconds apart; keeps a log.

    Faults (``inject(kind, count)``) apply to the next `count` sends: a signature fault to the request, and
    ``duplicate`` sends the same request twice.
    """

    def __init__(self, sink: Sink, *, interval: float = 0.0, batch_size: int = 1,
                 sleep: Callable[[float], None] = time.sleep):
        self.sink = sink
        self.interval = interval
        self.batch_size = batch_size
        self.sleep = sleep
        self.deliveries: list[Delivery] = []
        self.faults: list[list[Any]] = []  # [kind, remaining]
        self.lock = threading.Lock()

    def inject(self, kind: str, count: int = 1) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self.lock:
            self.faults.append([kind, count])

    def _take_fault(self) -> str | None:
        with self.lock:
            for fault in self.faults:
                if fault[1] > 0:
                    fault[1] -= 1
                    kind = fault[0]
                    self.faults = [f for f in self.faults if f[1] > 0]
                    return kind
        return None

    def ship(self, events: Sequence[dict[str, Any]], *, interval: float | None = None,
             batch_size: int | None = None) -> list[Delivery]:
        """Send every event (in the given order); returns this call's deliveries."""
        size = batch_size or self.batch_size
        pause = self.interval if interval is None else interval
        batches = [list(events[i:i + size]) for i in range(0, len(events), size)]
        done: list[Delivery] = []
        for index, batch in enumerate(batches):
            if index and pause > 0:
                self.sleep(pause)
            fault = self._take_fault()
            sends = 2 if fault == "duplicate" else 1
            for _ in range(sends):
                delivery = self.sink.deliver(batch, None if fault == "duplicate" else fault)
                delivery.fault = fault
                done.append(delivery)
        with self.lock:
            self.deliveries.extend(done)
        return done

    def log(self) -> list[dict[str, Any]]:
        with self.lock:
            return [d.to_dict() for d in self.deliveries]

    def reset(self) -> None:
        with self.lock:
            self.deliveries.clear()
            self.faults.clear()
