"""The carrier as a process: an HTTP API on loopback (the shared kit, stand_ins.kit) to start journeys and read
what was delivered, with the control endpoints every stand-in of this project has (faults, request log, reset).
Its faults apply to the carrier's outgoing sends, not to requests it receives. Contract: README.md."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from typing import Any

from stand_ins.kit import HttpError, Reply, Request, StandInApp, control

from .carrier import JOURNEY, Carrier, arrange, journey

MAX_BODY = 64 * 1024


class CarrierFaults:
    """The carrier's send faults (carrier.py) behind the kit's /__control/faults routes."""

    def __init__(self, carrier: Carrier):
        self.carrier = carrier

    def add_from(self, spec: dict[str, Any]) -> dict[str, Any]:
        try:
            count = int(spec.get("count", 1))
            self.carrier.inject(str(spec.get("kind")), count)
        except (ValueError, TypeError) as exc:
            raise HttpError(400, "invalid_request", str(exc)) from None
        return {"kind": spec.get("kind"), "count": count}

    def pending(self) -> list[dict[str, Any]]:
        with self.carrier.lock:
            return [{"kind": kind, "count": count} for kind, count in self.carrier.faults]

    def clear(self) -> None:
        with self.carrier.lock:
            self.carrier.faults.clear()


class LogisticsApp(StandInApp):
    """Routes and state (in memory): the carrier, its deliveries, the request log."""

    def __init__(self, carrier: Carrier):
        super().__init__("carrier", max_body=MAX_BODY)
        self.carrier = carrier
        self.threads: list[threading.Thread] = []
        add = self.router.add
        add("GET", "/health", lambda req: Reply(200, {"status": "ok", "sink": carrier.sink.name}))
        add("POST", "/shipments", self.start_journey)
        add("GET", "/deliveries", lambda req: Reply(200, {"items": carrier.log()}))
        control.register(self, reset=self.reset, faults=CarrierFaults(carrier), lists=control.items)

    def requests(self) -> list[dict[str, Any]]:
        return self.request_log.entries()

    def reset(self) -> None:
        """Forget deliveries, faults and the request log."""
        self.carrier.reset()
        self.request_log.clear()

    def start_journey(self, req: Request) -> Reply:
        body = req.json_object(empty={})
        tracking_number = body.get("tracking_number")
        if not isinstance(tracking_number, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}", tracking_number):
            raise HttpError(400, "invalid_request", "tracking_number is required (letters, digits, dashes)")
        statuses = body.get("statuses", list(JOURNEY))
        if not isinstance(statuses, list) or not statuses or not all(isinstance(s, str) for s in statuses):
            raise HttpError(400, "invalid_request", "statuses must be a non-empty list of strings")
        start = None
        if body.get("start") is not None:
            try:
                start = datetime.fromisoformat(str(body["start"]))
            except ValueError:
                raise HttpError(400, "invalid_request", "start must be an ISO 8601 time with a zone") from None
            if start.tzinfo is None:
                raise HttpError(400, "invalid_request", "start must be an ISO 8601 time with a zone")
        step = control.number(body, "step_minutes", 180, 0, 60 * 24 * 30)
        interval = control.number(body, "interval_seconds", 0, 0, 60)
        batch_size = int(control.number(body, "batch_size", 1, 1, 50))
        duplicates = int(control.number(body, "duplicates", 0, 0, 100))
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise HttpError(400, "invalid_request", "seed must be an integer")
        try:
            events = arrange(journey(tracking_number, statuses=statuses, start=start, step=timedelta(minutes=step),
                                     carrier=str(body.get("carrier", "Local Parcel")), location=body.get("location"),
                                     order_number=body.get("order_number")),
                             str(body.get("order", "in-order")), seed=seed, duplicates=duplicates)
        except ValueError as exc:
            raise HttpError(400, "invalid_request", str(exc)) from None
        if body.get("wait", True):
            deliveries = self.carrier.ship(events, interval=interval, batch_size=batch_size)
            return Reply(200, {"events": events, "deliveries": [d.to_dict() for d in deliveries]})
        thread = threading.Thread(target=self.carrier.ship, args=(events,),
                                  kwargs={"interval": interval, "batch_size": batch_size}, daemon=True)
        thread.start()
        self.threads.append(thread)
        return Reply(202, {"events": events})
