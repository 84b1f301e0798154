"""Fixtures for the shipment status publisher: moto DynamoDB (the state table holding the leases), the
Salesforce emulator through the shared `salesforce` fixture, an admin view of the org, and a CometD
subscriber playing the Lightning page."""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from shipment_status import handler as publisher

from salesforce_access import soql
from salesforce_access.observability import logger
from salesforce_emulator.connection import fetch_token, https_session
from salesforce_emulator.subscriber import EventSubscriber

CHANNEL = "/event/Shipment_Status__e"
BASE_TIME = datetime(2025, 3, 2, 8, 0, tzinfo=UTC)


def status_event(tracking_number: str, status: str, minutes: float = 0, **extra: Any) -> dict[str, Any]:
    """A ShipmentStatusChanged event as the rule hands it to Lambda; status time BASE_TIME + minutes."""
    at = BASE_TIME + timedelta(minutes=minutes)
    detail = {"tracking_number": tracking_number, "status": status,
              "status_time": at.isoformat().replace("+00:00", "Z"), "carrier": "DHL", **extra}
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "ShipmentStatusChanged",
            "source": "logistics.webhook", "account": "123456789012", "time": "2025-03-02T08:00:01Z",
            "region": "eu-west-1", "resources": [], "detail": detail}


def sf_time(minutes: float) -> str:
    """The Status_Updated_At__c Salesforce returns for BASE_TIME + minutes."""
    return (BASE_TIME + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


@pytest.fixture
def tracking() -> Callable[[], str]:
    """Unique tracking numbers: the emulator lives for the whole session."""
    return lambda: f"1Z{uuid.uuid4().hex[:14].upper()}"


@pytest.fixture
def state_table(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    table = boto3.resource("dynamodb").create_table(
        TableName="state", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    monkeypatch.setenv("STATE_TABLE_NAME", "state")
    monkeypatch.setenv("SHIPMENT_LEASE_WAIT_SECONDS", "0.3")
    publisher.reset()
    yield table
    publisher.reset()


@pytest.fixture
def publish(salesforce: Any, state_table: Any, lambda_context: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Invoke the deployed handler as EventBridge does (one event, a fresh request id each time)."""
    def invoke(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        return publisher.handler(event, context or type(lambda_context)())

    return invoke


class Org:
    """The org seen by an admin (not through the code under test)."""

    def __init__(self, info: dict[str, Any]):
        self.info = info
        self.session = https_session(info)
        self.base = f"{info['instance_url']}/services/data/v{info['api_version']}"
        self.login()

    def login(self) -> None:
        self.token = fetch_token(self.info, self.session)
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self.session.request(method, url, timeout=10, **kwargs)
        if response.status_code == 401:  # a test expired every token
            self.login()
            response = self.session.request(method, url, timeout=10, **kwargs)
        response.raise_for_status()
        return response

    def shipment(self, tracking_number: str) -> dict[str, Any] | None:
        response = self._call("GET", f"{self.base}/query", params={"q": soql(
            "SELECT Id, Name, Status__c, Status_Updated_At__c, Carrier__c, Order__c FROM Shipment__c "
            "WHERE Tracking_Number__c = {number}", number=tracking_number)})
        records = response.json()["records"]
        return records[0] if records else None

    def create(self, sobject: str, fields: dict[str, Any]) -> str:
        return self._call("POST", f"{self.base}/sobjects/{sobject}/", json=fields).json()["id"]

    def subscriber(self) -> EventSubscriber:
        sub = EventSubscriber(self.info["instance_url"], self.token, self.info["ca_bundle"], CHANNEL,
                              replay_id=-1, api_version=self.info["api_version"])
        sub.subscribe()  # from now on: only events published after this point
        return sub


@pytest.fixture
def org(salesforce: Any) -> Org:
    return Org(salesforce.info)


class Page:
    """A Lightning page subscribed to Shipment_Status__e (lightning/empApi speaks the same CometD); keeps
    every payload it received, so events of several shipments can be read one shipment at a time."""

    def __init__(self, sub: EventSubscriber):
        self.sub = sub
        self.received: list[dict[str, Any]] = []

    def events(self, tracking_number: str, wanted: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The payloads for `tracking_number`, once `wanted` arrived or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while True:
            mine = [p for p in self.received if p["Tracking_Number__c"] == tracking_number]
            if len(mine) >= wanted or time.monotonic() >= deadline:
                return mine
            self.received += [m["data"]["payload"] for m in self.sub.poll(timeout=0.5)]


@pytest.fixture
def page(org: Org) -> Iterator[Page]:
    sub = org.subscriber()
    yield Page(sub)
    sub.close()


def sf_calls(emu: Any) -> list[tuple[str, str]]:
    """(method, path) of every Salesforce API call since the log was cleared, token requests excluded."""
    return [(r["method"], r["path"].split("?")[0]) for r in emu.requests() if "/services/data/" in r["path"]]


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    log_handler = logging.StreamHandler(stream)
    log_handler.setFormatter(logger.registered_formatter)
    logger.addHandler(log_handler)
    try:
        yield stream
    finally:
        logging.getLogger(logger.name).removeHandler(log_handler)
