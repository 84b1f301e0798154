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


def test_create_without_a_salesforce_id_then_link_it(http):
    created = http.post("/customers", json={"name": " New Customer ", "email": "new@x.example",
                                            "updated_by": "erp-clerk"})
    assert created.status_code == 201
    record = created.json()["customer"]
    assert (record["name"], record["salesforce_id"], record["updated_by"], record["active"]) == (
        "New Customer", None, "erp-clerk", True)
    assert http.get(f"/customers/{record['customer_id']}").json() == record
    listed = http.get("/customers", params={"updated_since": record["updated_at"]}).json()["items"]
    assert [c["customer_id"] for c in listed] == [record["customer_id"]]
    linked = http.post("/customers", json={"name": "Linked at birth", "salesforce_id": SF_1}).json()["customer"]
    assert http.get(f"/customers/by-salesforce-id/{SF_1}").json()["customer_id"] == linked["customer_id"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [({"email": "x@y.example"}, 400, "REQUIRED_FIELD_MISSING"), ({"name": "A", "colour": "red"}, 400, "UNKNOWN_FIELD"),
     ({"name": "A", "salesforce_id": "nope"}, 400, "INVALID_SALESFORCE_ID"),
     ({"name": "A", "salesforce_id": SF_1}, 409, "DUPLICATE_SALESFORCE_ID"),
     ({"name": "A", "updated_by": ""}, 400, "INVALID_FIELD")],
)
def test_bad_creates_write_nothing(http, body, status, code):
    http.put(f"/customers/by-salesforce-id/{SF_1}", json=customer())
    before = http.get("/customers", params={"limit": 500}).json()["items"]
    response = http.post("/customers", json=body)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert http.get("/customers", params={"limit": 500}).json()["items"] == before


def test_bulk_update_links_many_by_customer_id_row_by_row(http):
    ids = [http.post("/customers", json={"name": f"Unlinked {i}"}).json()["customer"]["customer_id"]
           for i in range(4)]
    http.put(f"/customers/by-salesforce-id/{SF_2}", json=customer("Owner of SF_2"))
    before = {c["customer_id"]: c for c in http.get("/customers", params={"limit": 500}).json()["items"]}
    rows = [{"customer_id": ids[0], "salesforce_id": SF_1, "updated_by": "salesforce-sync"},
            {"customer_id": ids[1], "salesforce_id": SF_2, "updated_by": "salesforce-sync"},  # taken
            {"customer_id": "C-999999", "salesforce_id": "001000000000009AAA"},
            {"customer_id": ids[2], "salesforce_id": "001000000000003AAA", "phone": "+1 555", "updated_by": "sync"},
            {"customer_id": ids[3], "salesforce_id": "001000000000004AAA", "email": "broken"},
            {"salesforce_id": "001000000000005AAA"}, "not an object"]
    results = http.post("/customers/bulk-update", json={"customers": rows}).json()["results"]
    assert [r["result"] for r in results] == ["updated", "error", "error", "updated", "error", "error", "error"]
    assert [r["error"]["code"] for r in results if r["result"] == "error"] == [
        "DUPLICATE_SALESFORCE_ID", "CUSTOMER_NOT_FOUND", "INVALID_FIELD", "INVALID_CUSTOMER_ID", "INVALID_BULK"]
    assert http.get(f"/customers/by-salesforce-id/{SF_1}").json()["customer_id"] == ids[0]
    third = http.get(f"/customers/{ids[2]}").json()
    assert (third["salesforce_id"], third["phone"], third["updated_by"]) == ("001000000000003AAA", "+1 555", "sync")
    assert third["updated_at"] == results[3]["updated_at"] > before[ids[2]]["updated_at"]
    for unchanged in (ids[1], ids[3]):  # a refused row changes nothing, not even half of itself
        assert http.get(f"/customers/{unchanged}").json() == before[unchanged]
    again = http.post("/customers/bulk-update", json={"customers": rows[:1]}).json()["results"]
    assert again[0]["result"] == "unchanged"
    assert again[0]["updated_at"] == results[0]["updated_at"]


def test_bulk_update_takes_500_and_refuses_501(http):
    rows = [{"customer_id": "C-000001", "phone": f"+1 {i}"} for i in range(501)]
    too_many = http.post("/customers/bulk-update", json={"customers": rows})
    assert (too_many.status_code, too_many.json()["code"]) == (413, "TOO_MANY_CUSTOMERS")
    assert http.post("/customers/bulk-update", json={"customers": []}).json()["code"] == "INVALID_BULK"
    ok = http.post("/customers/bulk-update", json={"customers": rows[:500]}).json()["results"]
    assert [r["result"] for r in ok] == ["updated"] * 500
    assert http.get("/customers/C-000001").json()["phone"] == "+1 499"
