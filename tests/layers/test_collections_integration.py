"""sObject Collections and Composite against the emulator: chunking, per-record results, all-or-none."""

from __future__ import annotations

import uuid

import pytest

from salesforce_access import RecordResult, Subrequest, ValidationError, soql

from .conftest import api_calls, token_posts


def tag() -> str:
    return uuid.uuid4().hex[:10]


def test_create_in_chunks_of_200_with_results_in_input_order(make_access, emu) -> None:
    access = make_access("client_credentials")
    run = tag()
    records = [{"Name": f"{run}-{i:03d}"} for i in range(450)]
    records[250] = {"Industry": "Retail"}  # no Name: this one fails alone
    results = access.collections.create("Account", iter(records))  # an iterator is fine
    posts = [r for r in api_calls(emu, "/composite/sobjects") if r["method"] == "POST"]
    assert len(posts) == 3  # 200 + 200 + 50
    assert len(results) == 450
    assert all(isinstance(r, RecordResult) for r in results)
    failed = [i for i, r in enumerate(results) if not r.success]
    assert failed == [250]
    assert results[250].id is None
    assert results[250].errors[0].status_code == "REQUIRED_FIELD_MISSING"
    assert "Name" in results[250].errors[0].fields
    stored = {r["Id"]: r["Name"] for r in access.query(soql("SELECT Id, Name FROM Account WHERE Name LIKE {p}",
                                                            p=f"{run}-%"))}
    assert len(stored) == 449
    for i in (0, 199, 200, 449):  # ids line up with the input rows
        assert stored[results[i].id] == f"{run}-{i:03d}"


def test_all_or_none_rolls_back_the_chunk(make_access, emu) -> None:
    access = make_access("client_credentials")
    run = tag()
    results = access.collections.create("Account", [{"Name": f"{run}-a"}, {"Industry": "Retail"}],
                                        all_or_none=True)
    assert [r.success for r in results] == [False, False]
    assert results[0].errors[0].status_code == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert list(access.query(soql("SELECT Id FROM Account WHERE Name = {n}", n=f"{run}-a"))) == []


def test_upsert_update_and_delete(make_access, emu) -> None:
    access = make_access("client_credentials")
    run = tag()
    rows = [{"ERP_Customer_Id__c": f"{run}-{i}", "Name": f"Customer {i}"} for i in range(3)]
    first = access.collections.upsert("Account", "ERP_Customer_Id__c", rows)
    assert [r.created for r in first] == [True, True, True]
    rows[1]["Name"] = "Customer one, renamed"
    rows.append({"ERP_Customer_Id__c": f"{run}-3", "Name": "Customer 3"})
    second = access.collections.upsert("Account", "ERP_Customer_Id__c", rows)
    assert [r.created for r in second] == [False, False, False, True]
    assert second[1].id == first[1].id

    updated = access.collections.update("Account", [{"Id": first[0].id, "Industry": "Banking"},
                                                    {"Id": "001000000000000AAA", "Industry": "Banking"}])
    assert [r.success for r in updated] == [True, False]

    deleted = access.collections.delete([r.id for r in second])
    assert all(r.success for r in deleted)
    assert list(access.query(soql("SELECT Id FROM Account WHERE ERP_Customer_Id__c LIKE {p}", p=f"{run}-%"))) == []


def test_collections_survive_token_expiry_and_row_locks(make_access, emu) -> None:
    access = make_access("jwt_bearer")
    access.request("GET", "limits")
    emu.expire_tokens()
    emu.inject("UNABLE_TO_LOCK_ROW", count=1, path=r"/composite/sobjects")
    results = access.collections.create("Account", [{"Name": f"{tag()}-x"}])
    assert results[0].success
    # the emulator injects faults before checking the token: lock first, then expiry, then success
    assert [r["status"] for r in api_calls(emu, "/composite/sobjects")] == [400, 401, 200]
    assert len(token_posts(emu)) == 2  # the first token, then one re-authentication


def test_composite_all_or_none(make_access, emu) -> None:
    access = make_access("client_credentials")
    run = tag()
    ok = access.composite([
        Subrequest(method="POST", url="sobjects/Account", reference_id="acct", body={"Name": f"{run}-parent"}),
        {"method": "POST", "url": "sobjects/Contact", "referenceId": "contact",
         "body": {"LastName": "Smith", "AccountId": "@{acct.id}"}},
    ])
    assert ok.ok
    contact_id = ok.by_reference()["contact"].body["id"]
    assert access.request("GET", f"sobjects/Contact/{contact_id}")["AccountId"] == ok.by_reference()["acct"].body["id"]
    assert len(api_calls(emu, "/composite")) == 1

    failed = access.composite([
        {"method": "POST", "url": "sobjects/Account", "referenceId": "good", "body": {"Name": f"{run}-rolled"}},
        {"method": "POST", "url": "sobjects/Contact", "referenceId": "bad", "body": {"FirstName": "NoLastName"}},
    ], all_or_none=True)
    assert not failed.ok
    with pytest.raises(ValidationError) as info:
        failed.raise_for_errors()
    assert info.value.error_code == "REQUIRED_FIELD_MISSING"
    assert "'bad'" in str(info.value)
    assert list(access.query(soql("SELECT Id FROM Account WHERE Name = {n}", n=f"{run}-rolled"))) == []


def test_composite_rejects_more_than_25_subrequests(make_access, emu) -> None:
    access = make_access("client_credentials")
    subrequests = [{"method": "GET", "url": "limits", "referenceId": f"r{i}"} for i in range(26)]
    with pytest.raises(ValueError, match="25"):
        access.composite(subrequests)
    assert emu.requests() == []


def test_rest_query_streams_pages(make_access, emu) -> None:
    access = make_access("client_credentials")
    run = tag()
    access.collections.create("Account", [{"Name": f"{run}-{i:04d}"} for i in range(2500)])
    emu.clear_requests()
    rows = access.query(soql("SELECT Id, Name FROM Account WHERE Name LIKE {p}", p=f"{run}-%"))
    first = next(rows)
    assert first["Name"].startswith(run)
    assert len(api_calls(emu, "/query")) == 1  # only the first page so far
    assert 1 + sum(1 for _ in rows) == 2500
    assert len(api_calls(emu, "/query")) == 2  # 2,000 + 500


def test_volume_rule_on_the_access_object(make_access) -> None:
    access = make_access("client_credentials")
    assert access.api_for(2000) == "collections"
    assert access.api_for(2001) == "bulk"
