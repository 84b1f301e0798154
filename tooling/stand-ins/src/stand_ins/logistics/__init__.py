"""A logistics provider (carrier) stand-in for the UI Update pattern's tests and demos.

It reports shipment journeys as ShipmentStatusChanged events, in order or not, with delays, duplicates and
signature faults, either to the webhook (POST /shipments/events, HMAC-signed) or straight onto an EventBridge
bus::

    with LogisticsServer(WebhookSink(url, key)) as carrier:
        requests.post(f"{carrier.url}/shipments", json={"tracking_number": "1Z1", "order": "shuffle", "seed": 7})
        carrier.deliveries()

``python -m stand_ins.logistics serve`` runs the same thing as a process; README.md beside this file is the HTTP
contract. `LocalApiGateway` (gateway.py) puts the real webhook handler behind a loopback HTTP port.
"""

from __future__ import annotations

from typing import Any

from stand_ins.kit import StandInService

from .carrier import FAULT_KINDS, JOURNEY, ORDERS, BusSink, Carrier, Delivery, WebhookSink, arrange, journey, sign
from .gateway import LocalApiGateway, LocalContext, rest_proxy_event
from .server import LogisticsApp

__all__ = ["FAULT_KINDS", "JOURNEY", "ORDERS", "BusSink", "Carrier", "Delivery", "LocalApiGateway", "LocalContext",
           "LogisticsServer", "WebhookSink", "arrange", "journey", "rest_proxy_event", "sign"]


class LogisticsServer(StandInService):
    """The carrier's HTTP API in a background thread; a context manager. State lives as long as the object."""

    thread_name = "logistics-stand-in"
    server_version = "LogisticsStandIn/1.0"
    app: LogisticsApp

    def __init__(self, sink: Any, host: str = "127.0.0.1", port: int = 0, *, interval: float = 0.0,
                 batch_size: int = 1):
        self.carrier = Carrier(sink, interval=interval, batch_size=batch_size)
        super().__init__(LogisticsApp(self.carrier), host, port)

    @property
    def info(self) -> dict[str, Any]:
        """The start-up line printed by ``python -m stand_ins.logistics serve``."""
        return {**super().info, "sink": self.carrier.sink.name}

    def inject(self, kind: str, count: int = 1) -> None:
        self.carrier.inject(kind, count)

    def deliveries(self) -> list[dict[str, Any]]:
        return self.carrier.log()

    def requests(self) -> list[dict[str, Any]]:
        return self.app.requests()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait for journeys started with ``"wait": false`` to finish."""
        for thread in list(self.app.threads):
            thread.join(timeout)

    def reset(self) -> None:
        self.app.reset()
