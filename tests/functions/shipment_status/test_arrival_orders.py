"""A property over arrival orders: for a few status changes of one shipment, some carrying its order number,
delivered in any order, some twice, through either entry point (one EventBridge invocation per event, or SQS
batches of the buffered variant), the shipment ends at the newest status and linked to its order whenever any
event carried the number; the page is sent exactly the statuses that were news when they arrived, never an
older one after a newer one.

Against the Salesforce emulator and moto, as the other publisher tests; bounded and derandomized (the same
examples on every run). Each example uses its own tracking number, so the examples share the fixtures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shipment_status import handler as publisher
from shipment_status.salesforce import SalesforceShipments

from .conftest import BASE_TIME, Org, sf_time, status_event

JOURNEY = [("Label Created", 0), ("Picked Up", 10), ("In Transit", 20), ("Out for Delivery", 30), ("Delivered", 40)]
BOUNDED = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@dataclass(frozen=True)
class Delivery:
    entry: str  # "eventbridge": one invocation per event; "sqs": one batch of the buffered variant
    events: tuple[int, ...]  # indexes into the scenario's events


@dataclass(frozen=True)
class Scenario:
    events: tuple[tuple[int, bool], ...]  # (step of JOURNEY, carries the order number)
    deliveries: tuple[Delivery, ...]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    steps = draw(st.lists(st.integers(0, len(JOURNEY) - 1), min_size=2, max_size=4, unique=True))
    events = tuple((step, draw(st.booleans())) for step in steps)
    again = draw(st.lists(st.integers(0, len(events) - 1), max_size=2))  # duplicates: at least once delivery
    arrival = draw(st.permutations([*range(len(events)), *again]))
    deliveries, rest = [], list(arrival)
    while rest:
        size = draw(st.integers(1, min(3, len(rest))))
        deliveries.append(Delivery(draw(st.sampled_from(["eventbridge", "sqs"])), tuple(rest[:size])))
        rest = rest[size:]
    return Scenario(events, tuple(deliveries))


@pytest.fixture
def order(org: Org, tracking: Any) -> tuple[str, str]:
    """One Order for every example of the test: (Id, Ecommerce_Order_Number__c)."""
    account = org.create("Account", {"Name": "Arrival Order Test"})
    number = f"WEB-{tracking()}"
    return org.create("Order", {"AccountId": account, "EffectiveDate": "2025-03-01", "Status": "Draft",
                                "Ecommerce_Order_Number__c": number}), number


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, datetime]]:
    """(tracking number, status time) of every platform event Salesforce accepted, in publish order."""
    sent: list[tuple[str, datetime]] = []
    original = SalesforceShipments.publish

    def spy(self: SalesforceShipments, changes: Any, *args: Any) -> Any:
        results = original(self, changes, *args)
        sent.extend((c.tracking_number, c.status_time) for c in changes if results[c.tracking_number].ok)
        return results

    monkeypatch.setattr(SalesforceShipments, "publish", spy)
    return sent


def expected_publishes(scenario: Scenario) -> list[int]:
    """The rule, restated: an invocation publishes its newest change if that is newer than all before it (an
    EventBridge delivery is one invocation per event, an SQS batch one for the batch)."""
    invocations = [inv for d in scenario.deliveries
                   for inv in ([(i,) for i in d.events] if d.entry == "eventbridge" else [d.events])]
    newest, expected = -1, []
    for events in invocations:
        step = max(scenario.events[i][0] for i in events)
        if step > newest:
            expected.append(step)
            newest = step
    return expected


@BOUNDED
@given(scenario=scenarios())
def test_any_arrival_order_ends_at_the_newest_status_linked_to_the_order(
        scenario, salesforce, state_table, org, tracking, order, published, lambda_context):
    order_id, order_number = order
    number = tracking()
    events = [status_event(number, JOURNEY[step][0], minutes=JOURNEY[step][1],
                           **({"order_number": order_number} if carries else {}))
              for step, carries in scenario.events]

    for delivery in scenario.deliveries:
        if delivery.entry == "eventbridge":
            for index in delivery.events:
                summary = publisher.handler(events[index], type(lambda_context)())
                assert "failed" not in summary["results"], summary
        else:
            records = [{"messageId": f"m{n}", "body": json.dumps(events[i])} for n, i in enumerate(delivery.events)]
            assert publisher.sqs_handler({"Records": records}, lambda_context) == {"batchItemFailures": []}

    newest = max(step for step, _ in scenario.events)
    record = org.shipment(number)
    assert (record["Status__c"], record["Status_Updated_At__c"]) == (JOURNEY[newest][0], sf_time(JOURNEY[newest][1]))
    linked = any(carries for _, carries in scenario.events)
    assert record["Order__c"] == (order_id if linked else None)
    minutes = [int((at - BASE_TIME).total_seconds() // 60) for n, at in published if n == number]
    assert minutes == [JOURNEY[step][1] for step in expected_publishes(scenario)]
