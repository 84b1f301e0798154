"""The customer sync end to end: the emulator over HTTPS, the ERP stand-in over HTTP, moto for AWS."""

from __future__ import annotations


def _pairs(admin, erp) -> tuple[dict, dict]:
    accounts = {a["ERP_Customer_Id__c"]: a for a in admin.accounts()}
    customers = {c["customer_id"]: c for c in erp.customers()}
    return accounts, customers


def assert_equal_sides(admin, erp) -> None:
    """Every customer exists once on each side, linked both ways, with the same mapped values."""
    accounts, customers = _pairs(admin, erp)
    assert None not in accounts, "an Account was never linked to an ERP customer"
    assert set(accounts) == set(customers)
    for cid, customer in customers.items():
        account = accounts[cid]
        assert customer["salesforce_id"] == account["Id"]
        assert customer["name"] == account["Name"]
        assert customer["phone"] == account["Phone"]
        assert customer["email"] == account["Customer_Email__c"]
        assert customer["active"] == account["Active__c"]
        address = customer["billing_address"] or {}
        assert address.get("city") == account["BillingCity"]


def test_first_run_is_a_full_load_both_ways(stack, admin, erp):
    admin.create_many([{"Name": f"SF Customer {n}", "Phone": f"+44 20 7946 {n:04d}", "BillingCity": "London",
                        "Customer_Email__c": f"sf{n}@example.com"} for n in range(30)])
    for n in range(20):
        erp.create(f"ERP Customer {n}", email=f"erp{n}@example.com",
                   billing_address={"street": "1 Road", "city": "Leeds", "postal_code": "LS1", "country": "GB"})

    answer = stack.sync()

    assert answer["status"] == "started"
    assert answer["mode"] == "full"
    summary = stack.summary(answer["run_id"])
    assert summary["status"] == "completed"
    assert (summary["read"], summary["created"], summary["failed"]) == (50, 50, 0)
    assert summary["api_calls"] > 0
    assert summary["duration_seconds"] > 0
    assert_equal_sides(admin, erp)
    assert len(admin.accounts()) == 50
    assert len(erp.customers()) == 50
    assert set(stack.watermarks()) == {"salesforce", "erp"}


def test_incremental_run_carries_only_changes_and_never_echoes(stack, admin, erp, salesforce):
    ids = admin.create_many([{"Name": f"Acme {n}"} for n in range(5)])
    cid = erp.create("Brandt GmbH", email="einkauf@brandt.example")
    stack.sync()

    second = stack.sync()  # nothing changed by anyone but the sync itself: nothing to write
    summary = stack.summary(second["run_id"])
    assert (summary["created"], summary["updated"], summary["read"]) == (0, 0, 0)

    admin.update(ids[0], {"Phone": "+1 555 0100"})
    erp.patch(cid, phone="+49 69 1234")
    erp.server.clear_requests()
    third = stack.sync()

    summary = stack.summary(third["run_id"])
    assert (summary["read"], summary["updated"], summary["created"], summary["failed"]) == (2, 2, 0, 0)
    accounts, customers = _pairs(admin, erp)
    assert customers[next(c for c, a in accounts.items() if a["Id"] == ids[0])]["phone"] == "+1 555 0100"
    assert accounts[cid]["Phone"] == "+49 69 1234"
    assert_equal_sides(admin, erp)
    assert len(erp.writes()) == 1  # one bulk write for the one Salesforce change; no echo of our own Account update

    fourth = stack.sync()  # the sync's own writes of the third run are not synced back
    summary = stack.summary(fourth["run_id"])
    assert (summary["read"], summary["updated"]) == (0, 0)
    assert all(c["updated_by"] in ("salesforce-sync", "erp-clerk") for c in erp.customers())


def test_delete_in_salesforce_deactivates_the_erp_customer(stack, admin, erp):
    ids = admin.create_many([{"Name": "To be deleted"}, {"Name": "Stays"}])
    stack.sync()
    admin.delete(ids[0])

    answer = stack.sync()

    summary = stack.summary(answer["run_id"])
    assert summary["deleted"] == 1
    by_sf = {c["salesforce_id"]: c for c in erp.customers()}
    assert by_sf[ids[0]]["active"] is False
    assert by_sf[ids[1]]["active"] is True
    assert stack.summary(stack.sync()["run_id"])["deleted"] == 0  # a delete is carried once


def test_deactivation_in_the_erp_is_reflected_in_salesforce(stack, admin, erp):
    cid = erp.create("Coastal Water Works")
    stack.sync()
    erp.patch(cid, active=False)

    stack.sync()

    accounts, _ = _pairs(admin, erp)
    assert accounts[cid]["Active__c"] is False
    assert_equal_sides(admin, erp)


def test_conflict_follows_the_rule_and_is_reported(stack, admin, erp):
    ids = admin.create_many([{"Name": "Contested Ltd", "Phone": "+44 1"}])
    stack.sync()
    cid = next(c["customer_id"] for c in erp.customers())
    admin.update(ids[0], {"Phone": "+44 2 (Salesforce)"})
    erp.patch(cid, phone="+44 3 (ERP)")

    answer = stack.sync()

    summary = stack.summary(answer["run_id"])
    assert summary["conflicts"] == 1
    conflicts = [line for line in stack.report(answer["run_id"]) if line["type"] == "conflict"]
    assert conflicts == [dict(conflicts[0], customer_id=cid, salesforce_id=ids[0], rule="salesforce_wins",
                              winner="salesforce")]
    accounts, customers = _pairs(admin, erp)
    assert customers[cid]["phone"] == accounts[cid]["Phone"] == "+44 2 (Salesforce)"


def test_per_record_failures_are_reported_while_the_rest_commit(stack, admin, erp):
    admin.create_many([{"Name": f"Good {n}"} for n in range(4)])
    blank = admin.create_many([{"Name": "   "}])[0]  # Salesforce keeps it; the ERP refuses a blank name
    for n in range(3):
        erp.create(f"Fine {n}")
    too_long = erp.create("Long City", billing_address={"street": None, "city": "C" * 60, "postal_code": None,
                                                       "country": None})  # BillingCity holds 40

    answer = stack.sync()

    summary = stack.summary(answer["run_id"])
    assert (summary["failed"], summary["created"]) == (2, 7)
    failures = sorted((line["direction"], line["error_code"], line["customer_id"], line["salesforce_id"])
                      for line in stack.report(answer["run_id"]) if line["type"] == "failure")
    assert failures == [("erp_to_salesforce", "STRING_TOO_LONG", too_long, None),
                        ("salesforce_to_erp", "INVALID_FIELD", None, blank)]
    assert len(erp.customers()) == 8
    assert len(admin.accounts()) == 8


def test_new_accounts_are_linked_to_the_erp_in_bulk_and_the_sync_user_comes_from_the_token(stack, admin, erp,
                                                                                          salesforce):
    for n in range(30):
        erp.create(f"ERP Customer {n}")
    erp.server.clear_requests()
    salesforce.clear_requests()

    answer = stack.start()

    api = [r["path"].split("/services/data/")[-1] for r in salesforce.requests() if "/services/data/" in r["path"]]
    assert api == [f"v{salesforce.info['api_version']}/sobjects/Account/describe"]  # no query for the user
    [user] = admin.query(f"SELECT Id FROM User WHERE Username = '{salesforce.info['username']}'")  # noqa: S608
    assert stack.run_item(answer["run_id"])["integration_user_id"] == user["Id"]
    stack.drain()
    assert stack.summary(answer["run_id"])["created"] == 30
    assert_equal_sides(admin, erp)
    writes = [(r["method"], r["path"]) for r in erp.writes()]
    assert writes == [("POST", "/customers/bulk-update")]  # 30 links in one call, not one PATCH each


def test_a_link_the_erp_refuses_is_reported_and_the_others_are_linked(stack, admin, erp, monkeypatch):
    from customer_sync.erp import ErpCustomers

    ids = [erp.create(f"ERP Customer {n}") for n in range(3)]
    real = ErpCustomers.bulk_update

    def removed_meanwhile(self, rows):  # someone deletes a customer in the ERP while the sync runs
        with erp.server.app.lock:
            erp.server.customers.by_id.pop(ids[1], None)
        return real(self, rows)

    monkeypatch.setattr(ErpCustomers, "bulk_update", removed_meanwhile)
    answer = stack.sync()

    summary = stack.summary(answer["run_id"])
    assert (summary["created"], summary["failed"]) == (3, 1)
    [failure] = [line for line in stack.report(answer["run_id"]) if line["type"] == "failure"]
    assert (failure["error_code"], failure["customer_id"]) == ("LINK_FAILED", ids[1])
    assert failure["message"].startswith("CUSTOMER_NOT_FOUND")
    linked = {c["customer_id"]: c["salesforce_id"] for c in erp.customers()}
    assert linked[ids[0]] is not None
    assert linked[ids[2]] is not None


def test_new_erp_customers_are_loaded_without_a_lookup_and_linked_ones_are_looked_up(stack, admin, erp, salesforce):
    """A first load of new customers costs no query per chunk; once linked, a change is checked against its
    Account (a conflict or a deleted Account is found) with one queryAll per 200 linked changes."""
    ids = [erp.create(f"New {n:03d}") for n in range(450)]  # above the test threshold of 50: Bulk API
    salesforce.clear_requests()

    first = stack.sync()

    queries = [r for r in salesforce.requests() if r["path"].rsplit("/", 1)[-1] in ("query", "queryAll")]
    assert len(queries) == 3  # phase 2 counts and reads Salesforce changes (none), phase 3 reads deletions
    assert stack.summary(first["run_id"])["created"] == 450
    assert_equal_sides(admin, erp)

    for cid in ids:
        erp.patch(cid, phone="+44 1")
    salesforce.clear_requests()
    second = stack.sync()

    queries = [r for r in salesforce.requests() if r["path"].rsplit("/", 1)[-1] in ("query", "queryAll")]
    assert len(queries) == 3 + 3  # and one lookup per 200 linked changes: 200 + 200 + 50
    assert stack.summary(second["run_id"])["updated"] == 450
    assert_equal_sides(admin, erp)


def test_an_account_whose_link_into_the_erp_was_lost_updates_its_customer_instead_of_a_second_one(stack, admin, erp,
                                                                                                monkeypatch):
    from customer_sync.erp import ErpCustomers

    cid = erp.create("Lost Link Ltd")
    linked = ErpCustomers.bulk_update

    def refused(self, rows):  # the ERP refuses to record the new Account's Id on its customer
        return [{"index": i, "customer_id": row["customer_id"], "result": "error",
                 "error": {"code": "LOCKED", "message": "the customer is being edited"}} for i, row in enumerate(rows)]

    monkeypatch.setattr(ErpCustomers, "bulk_update", refused)
    first = stack.sync()
    [failure] = [line for line in stack.report(first["run_id"]) if line["type"] == "failure"]
    assert (failure["error_code"], failure["customer_id"]) == ("LINK_FAILED", cid)
    [account] = admin.accounts()
    assert account["ERP_Customer_Id__c"] == cid
    assert erp.customers()[0]["salesforce_id"] is None
    monkeypatch.setattr(ErpCustomers, "bulk_update", linked)

    admin.update(account["Id"], {"Phone": "+1 555 0199"})  # a change in Salesforce before the ERP changes again
    second = stack.sync()

    [customer] = erp.customers()  # no second customer for the same Account
    assert (customer["customer_id"], customer["salesforce_id"], customer["phone"]) == (cid, account["Id"],
                                                                                       "+1 555 0199")
    assert stack.summary(second["run_id"])["updated"] == 1
    assert_equal_sides(admin, erp)


def test_an_account_keyed_with_a_customer_the_erp_does_not_have_is_reported(stack, admin, erp):
    [account_id] = admin.create_many([{"Name": "Typo Key", "ERP_Customer_Id__c": "C-999999"}])

    answer = stack.sync()

    [failure] = [line for line in stack.report(answer["run_id"]) if line["type"] == "failure"]
    assert (failure["direction"], failure["error_code"], failure["salesforce_id"]) == (
        "salesforce_to_erp", "CUSTOMER_NOT_FOUND", account_id)
    assert erp.customers() == []  # not created under another id, and the key not overwritten
    assert admin.accounts()[0]["ERP_Customer_Id__c"] == "C-999999"
