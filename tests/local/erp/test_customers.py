"""Customer endpoints for the batch sync: watermark listing with cursors, upsert by Salesforce Id,
deactivation, bulk upsert, and updated_at / updated_by on every real change (never on a no-op)."""

from __future__ import annotations

import re

import pytest

SF_1 = "001000000000001AAA"
SF_2 = "001000000000002AAA"


def customer(name: str = "Delta Foods", **extra) -> dict:
    return {"name": name, "email": "buyer@delta.example", "updated_by": "salesforce-sync", **extra}


def test_upsert_creates_then_updates_then_is_unchanged(http):
    created = http.put(f"/customers/by-salesforce-id/{SF_1}", json=customer())
    assert created.status_code == 201
    body = created.json()
    assert body["result"] == "created"
    record = body["customer"]
    assert re.fullmatch(r"C-\d{6}", record["customer_id"])
    assert (record["salesforce_id"], record["updated_by"], record["active"]) == (SF_1, "salesforce-sync", True)

    updated = http.put(f"/customers/by-salesforce-id/{SF_1}", json=customer(phone="+1 555 0101"))
    assert (updated.status_code, updated.json()["result"]) == (200, "updated")
    assert updated.json()["customer"]["customer_id"] == record["customer_id"]
    assert updated.json()["customer"]["updated_at"] > record["updated_at"]

    again = http.put(f"/customers/by-salesforce-id/{SF_1}", json=customer(phone="+1 555 0101"))
    assert again.json()["result"] == "unchanged"
    assert again.json()["customer"]["updated_at"] == updated.json()["customer"]["updated_at"]

    fetched = http.get(f"/customers/by-salesforce-id/{SF_1}").json()
    assert fetched == http.get(f"/customers/{record['customer_id']}").json() == again.json()["customer"]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [(f"/customers/by-salesforce-id/{SF_1}", {"email": "x@y.example"}, 400, "REQUIRED_FIELD_MISSING"),
     (f"/customers/by-salesforce-id/{SF_1}", {"name": "A", "emial": "typo"}, 400, "UNKNOWN_FIELD"),
     (f"/customers/by-salesforce-id/{SF_1}", {"name": "A", "email": "not-an-email"}, 400, "INVALID_FIELD"),
     (f"/customers/by-salesforce-id/{SF_1}", {"name": "A", "salesforce_id": SF_2}, 400, "INVALID_FIELD"),
     ("/customers/by-salesforce-id/not-an-id", {"name": "A"}, 400, "INVALID_SALESFORCE_ID"),
     ("/customers/C-999999", None, 404, "CUSTOMER_NOT_FOUND")],
)
def test_bad_customer_requests(http, path, body, status, code):
    response = http.put(path, json=body) if body is not None else http.get(path)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert http.get(f"/customers/by-salesforce-id/{SF_1}").status_code == 404  # nothing half-written


def test_erp_side_edit_and_deactivate_stamp_updated_by(http):
    record = http.put(f"/customers/by-salesforce-id/{SF_1}", json=customer()).json()["customer"]
    edited = http.patch(f"/customers/{record['customer_id']}", json={"phone": "+1", "updated_by": "erp-user"})
    assert edited.json()["customer"]["updated_by"] == "erp-user"
    off = http.post(f"/customers/{record['customer_id']}/deactivate", json={"updated_by": "erp-user"})
    assert (off.json()["result"], off.json()["customer"]["active"]) == ("updated", False)
    assert http.post(f"/customers/{record['customer_id']}/deactivate").json()["result"] == "unchanged"


def test_linking_a_salesforce_id_twice_is_a_conflict(http):
    http.put(f"/customers/by-salesforce-id/{SF_1}", json=customer())
    response = http.patch("/customers/C-000001", json={"salesforce_id": SF_1})
    assert (response.status_code, response.json()["code"]) == (409, "DUPLICATE_SALESFORCE_ID")
    linked = http.patch("/customers/C-000001", json={"salesforce_id": SF_2})
    assert linked.json()["customer"]["salesforce_id"] == SF_2
    assert http.get(f"/customers/by-salesforce-id/{SF_2}").json()["customer_id"] == "C-000001"


def test_listing_pages_by_cursor_in_updated_order_without_gaps(http):
    for i in range(7):
        http.put(f"/customers/by-salesforce-id/001000000000{i:03d}AAA", json=customer(f"Customer {i}"))
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = http.get("/customers", params=params).json()
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4  # 3 seeded + 7 new = 10 customers
    assert len({c["customer_id"] for c in seen}) == 10
    stamps = [c["updated_at"] for c in seen]
    assert stamps == sorted(stamps)


def test_watermark_returns_only_later_changes_and_a_changed_customer_moves_up(http):
    first = http.put(f"/customers/by-salesforce-id/{SF_1}", json=customer("First")).json()["customer"]
    watermark = first["updated_at"]
    http.put(f"/customers/by-salesforce-id/{SF_2}", json=customer("Second"))
    http.patch("/customers/C-000002", json={"phone": "+49 1", "updated_by": "erp-user"})
    changed = http.get("/customers", params={"updated_since": watermark}).json()["items"]
    # updated_since is inclusive: the record at the watermark comes back, the sync de-duplicates it
    assert [c["name"] for c in changed] == ["First", "Second", "Brandt Maschinenbau GmbH"]


@pytest.mark.parametrize(
    ("params", "code"),
    [({"updated_since": "yesterday"}, "INVALID_UPDATED_SINCE"), ({"updated_since": "2025-01-01T00:00:00"},
     "INVALID_UPDATED_SINCE"), ({"limit": "0"}, "INVALID_LIMIT"), ({"limit": "501"}, "INVALID_LIMIT"),
     ({"cursor": "garbage!"}, "INVALID_CURSOR")],
)
def test_bad_listing_parameters(http, params, code):
    response = http.get("/customers", params=params)
    assert (response.status_code, response.json()["code"]) == (400, code)


def test_cursor_must_continue_its_own_listing(http):
    page = http.get("/customers", params={"limit": 1, "updated_since": "2000-01-01T00:00:00Z"}).json()
    other = http.get("/customers", params={"cursor": page["next_cursor"], "updated_since": "2001-01-01T00:00:00Z"})
    assert other.json()["code"] == "INVALID_CURSOR"
    same = http.get("/customers", params={"cursor": page["next_cursor"]})
    assert same.status_code == 200


def test_bulk_upsert_reports_per_row_and_writes_the_good_rows(http):
    rows = [{"salesforce_id": SF_1, **customer("Bulk one")}, {"salesforce_id": "bad", "name": "X"},
            {"salesforce_id": SF_2, "email": "no-name@x.example"}, "not an object"]
    response = http.post("/customers/bulk-upsert", json={"customers": rows})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["result"] for r in results] == ["created", "error", "error", "error"]
    assert [r["error"]["code"] for r in results[1:]] == ["INVALID_SALESFORCE_ID", "REQUIRED_FIELD_MISSING",
                                                         "INVALID_BULK"]
    assert http.get(f"/customers/by-salesforce-id/{SF_1}").json()["name"] == "Bulk one"
    again = http.post("/customers/bulk-upsert", json={"customers": rows[:1]}).json()["results"]
    assert again[0]["result"] == "unchanged"


def test_bulk_upsert_takes_500_and_refuses_501(http):
    rows = [{"salesforce_id": f"001000000{i:06d}AAA", "name": f"C{i}"} for i in range(501)]
    too_many = http.post("/customers/bulk-upsert", json={"customers": rows})
    assert (too_many.status_code, too_many.json()["code"]) == (413, "TOO_MANY_CUSTOMERS")
    ok = http.post("/customers/bulk-upsert", json={"customers": rows[:500]})
    assert [r["result"] for r in ok.json()["results"]] == ["created"] * 500
