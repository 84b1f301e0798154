"""The customer listing's change log: after any mix of creates, edits, re-links and clears, paging by cursor
returns exactly what sorting every customer would, and the log stays bounded by the live customers."""

from __future__ import annotations

import random

from stand_ins.erp.clock import format_time
from stand_ins.erp.customers import Customers


def brute_force(customers: Customers, since, after, limit):
    rows = sorted(customers.by_id.values(), key=lambda c: (c.updated_at, c.customer_id))
    rows = [c for c in rows if since is None or c.updated_at >= since]
    rows = [c for c in rows if after is None or (c.updated_at, c.customer_id) > after]
    return rows[:limit]


def every_page(customers: Customers, since, limit):
    seen, after = [], None
    while True:
        page = customers.changed_since(since, after, limit)
        assert [c.customer_id for c in page] == [c.customer_id for c in brute_force(customers, since, after, limit)]
        seen += page
        if len(page) < limit:
            return seen
        after = (page[-1].updated_at, page[-1].customer_id)


def test_paging_matches_a_full_sort_after_random_changes():
    rng = random.Random(5)
    customers = Customers()
    marks = []
    for step in range(6000):
        ids = list(customers.by_id)
        action = rng.random()
        if action < 0.3 or not ids:
            customers.create({"name": f"Customer {step}", "updated_by": "test"})
        elif action < 0.8:
            customers.update(customers.by_id[rng.choice(ids)], {"phone": f"+{step}", "updated_by": "edit"})
        elif action < 0.95:
            customers.update(customers.by_id[rng.choice(ids)], {"salesforce_id": f"001{step:015d}"})
        else:  # a write that changes nothing stamps nothing
            target = customers.by_id[rng.choice(ids)]
            stamp = target.updated_at
            assert customers.update(target, {"name": target.name}) is False
            assert target.updated_at == stamp
        if step % 1500 == 0:
            marks.append(customers.clock.stamp())
        assert len(customers._log) <= 2 * len(customers.by_id) + 1024  # compaction keeps it bounded
    for since in [None, *marks]:
        listed = every_page(customers, since, 97)
        assert [c.customer_id for c in listed] == [c.customer_id for c in brute_force(customers, since, None, 10**9)]
    assert len(every_page(customers, None, 500)) == len(customers.by_id)


def test_a_cleared_or_restamped_customer_is_listed_once_at_its_new_place():
    customers = Customers()
    customers.clear()
    first = customers.create({"name": "First"})
    second = customers.create({"name": "Second"})
    customers.update(first, {"phone": "+1"})
    assert [c.name for c in customers.changed_since(None, None, 10)] == ["Second", "First"]
    after = (second.updated_at, second.customer_id)
    assert [c.name for c in customers.changed_since(None, after, 10)] == ["First"]
    assert format_time(first.updated_at) > format_time(second.updated_at)
    customers.clear()
    assert customers.changed_since(None, None, 10) == []
    assert customers.create({"name": "After clear"}).customer_id == "C-000006"  # 3 seeds, 2 above: never reused
