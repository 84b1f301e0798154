"""The carrier's journeys, orders, delays and faults, and what a webhook checking the documented signature answers
to each (the product's own webhook: tests/functions/shipment_webhook/test_with_carrier_stand_in.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stand_ins.logistics import JOURNEY, Carrier, arrange, journey
from stand_ins.logistics.carrier import Delivery


def test_a_journey_has_one_event_per_status_step_apart():
    events = journey("1ZJ", start=datetime(2025, 3, 2, 8, tzinfo=UTC), step=timedelta(hours=2), order_number="W-1")
    assert [e["status"] for e in events] == list(JOURNEY)
    assert [e["status_time"] for e in events] == ["2025-03-02T08:00:00Z", "2025-03-02T10:00:00Z",
                                                  "2025-03-02T12:00:00Z", "2025-03-02T14:00:00Z",
                                                  "2025-03-02T16:00:00Z"]
    assert {e["order_number"] for e in events} == {"W-1"}


def test_orders_reverse_shuffle_and_last_first():
    events = journey("1ZO")
    assert arrange(events, "reverse") == events[::-1]
    assert arrange(events, "last-first") == [events[-1], *events[:-1]]
    shuffled = arrange(events, "shuffle", seed=7)
    assert shuffled == arrange(events, "shuffle", seed=7)  # reproducible
    assert shuffled != events
    assert sorted(shuffled, key=lambda e: e["status_time"]) == events


def test_duplicates_are_extra_copies_of_real_events():
    events = journey("1ZD")
    arranged = arrange(events, duplicates=3, seed=1)
    assert len(arranged) == len(events) + 3
    assert all(e in events for e in arranged)


def test_an_unknown_order_is_refused():
    with pytest.raises(ValueError, match="order must be one of"):
        arrange(journey("1Z"), "sideways")


class RecordingSink:
    name = "recording"

    def __init__(self):
        self.sent: list[tuple[list[str], str | None]] = []

    def deliver(self, events, fault=None):
        self.sent.append(([e["status"] for e in events], fault))
        return Delivery([e["tracking_number"] for e in events], [e["status"] for e in events], self.name, 202, fault)


def test_sends_are_spaced_by_the_interval_and_grouped_by_batch_size():
    sleeps: list[float] = []
    sink = RecordingSink()
    carrier = Carrier(sink, interval=0.5, batch_size=2, sleep=sleeps.append)

    carrier.ship(journey("1ZB"))

    assert [statuses for statuses, _ in sink.sent] == [list(JOURNEY[:2]), list(JOURNEY[2:4]), [JOURNEY[4]]]
    assert sleeps == [0.5, 0.5]  # between sends, not before the first


def test_faults_apply_to_the_next_sends_only():
    sink = RecordingSink()
    carrier = Carrier(sink)
    carrier.inject("bad_signature", count=2)
    carrier.inject("duplicate")

    carrier.ship(journey("1ZF"))

    assert [fault for _, fault in sink.sent] == ["bad_signature", "bad_signature", None, None, None, None]
    assert [statuses[0] for statuses, _ in sink.sent][2:4] == ["In Transit", "In Transit"]  # sent twice
    with pytest.raises(ValueError, match="kind must be one of"):
        carrier.inject("gremlins")


def test_the_webhook_accepts_what_the_carrier_signs(carrier, bus):
    carrier.carrier.ship(journey("1ZSIGNED"))

    assert [d["status"] for d in carrier.deliveries()] == [202] * 5
    assert [e["detail"]["status"] for e in bus.received()] == list(JOURNEY)


@pytest.mark.parametrize("fault", ["missing_signature", "bad_signature", "stale_timestamp", "tampered_body"])
def test_each_signature_fault_is_refused_by_the_webhook_and_nothing_reaches_the_bus(carrier, bus, fault):
    carrier.inject(fault)

    carrier.carrier.ship(journey("1ZFAULT", statuses=["Picked Up", "In Transit"]))

    first, second = carrier.deliveries()
    assert (first["fault"], first["status"], first["answer"]["error"]) == (fault, 401, "unauthorized")
    assert second["status"] == 202
    assert [e["detail"]["status"] for e in bus.received()] == ["In Transit"]


def test_a_duplicate_send_puts_the_event_twice(carrier, bus):
    carrier.inject("duplicate")
    carrier.carrier.ship(journey("1ZDUP", statuses=["Picked Up"]))
    assert [e["detail"]["status"] for e in bus.received()] == ["Picked Up", "Picked Up"]


def test_a_batch_goes_in_one_signed_request(carrier, bus):
    carrier.carrier.ship(journey("1ZBATCH"), batch_size=5)
    [delivery] = carrier.deliveries()
    assert delivery["answer"]["accepted"] == 5
    assert len(bus.received()) == 5


def test_the_bus_sink_puts_events_without_the_webhook(bus):
    import boto3

    from stand_ins.logistics import BusSink

    deliveries = Carrier(BusSink(boto3.client("events"), "logistics")).ship(journey("1ZBUS"), batch_size=5)

    assert [d.status for d in deliveries] == [200]
    received = bus.received()
    assert {e["source"] for e in received} == {"logistics.carrier"}
    assert [e["detail"]["status"] for e in received] == list(JOURNEY)
