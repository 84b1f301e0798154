"""sObject Collections and Composite against the emulator: chunking, per-record results, all-or-none."""

from __future__ import annotations

import uuid

import pytest

from salesforce_access import RecordResult, RowLocked, Subrequest, ValidationError, soql

from .conftest import api_calls, token_posts


def tag() -> str:
    return uuid.uuid4().hex[:10]


def test_create_in_chunks_of_200_with_results_in_input_order(make_access, emu, independent_client) -> None:
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
    query = soql("SELECT Id, Name FROM Account WHERE Name LIKE {p}", p=f"{run}-%")
    stored = {r["Id"]: r["Name"] for r in independent_client.query_all(query)["records"]}
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


def test_composite_names_a_record_refused_inside_a_collection_subrequest(make_access, emu) -> None:
    """The collection answers 200 with success false on one record; every other subrequest and record only
    echoes the rollback. The error raised is the record's own, not PROCESSING_HALTED."""
    access = make_access("client_credentials")
    run = tag()
    contacts = [{"attributes": {"type": "Contact"}, "LastName": f"{run}-0"},
                {"attributes": {"type": "Contact"}, "FirstName": "NoLastName"},
                {"attributes": {"type": "Contact"}, "LastName": f"{run}-2"}]
    result = access.composite([
        {"method": "POST", "url": "sobjects/Account", "referenceId": "account", "body": {"Name": f"{run}-acct"}},
        {"method": "POST", "url": "composite/sobjects", "referenceId": "contacts",
         "body": {"allOrNone": False, "records": contacts}},
        {"method": "POST", "url": "sobjects/Account", "referenceId": "after", "body": {"Name": f"{run}-after"}},
    ], all_or_none=True)
    assert not result.ok
    assert result.by_reference()["contacts"].http_status_code == 200  # the failure hides in the body
    assert {e.error_code for e in result.errors() if e.rolled_back} == {"PROCESSING_HALTED",
                                                                         "ALL_OR_NONE_OPERATION_ROLLED_BACK"}
    [cause] = result.causes()
    assert (cause.reference_id, cause.record_index, cause.error_code) == ("contacts", 1, "REQUIRED_FIELD_MISSING")
    with pytest.raises(ValidationError) as info:
        result.raise_for_errors()
    assert info.value.error_code == "REQUIRED_FIELD_MISSING"
    assert "subrequest 'contacts' record 1 failed" in str(info.value)
    assert "LastName" in info.value.fields
    assert list(access.query(soql("SELECT Id FROM Account WHERE Name LIKE {p}", p=f"{run}-%"))) == []
    assert list(access.query(soql("SELECT Id FROM Contact WHERE LastName LIKE {p}", p=f"{run}-%"))) == []


def test_a_partly_failed_collection_is_not_ok_without_all_or_none(make_access, emu) -> None:
    access = make_access("client_credentials")
    run = tag()
    result = access.composite([
        {"method": "POST", "url": "composite/sobjects", "referenceId": "accounts",
         "body": {"allOrNone": False, "records": [{"attributes": {"type": "Account"}, "Name": f"{run}-ok"},
                                                 {"attributes": {"type": "Account"}, "Industry": "Retail"}]}},
    ], all_or_none=False)
    assert not result.ok
    assert [(e.record_index, e.error_code) for e in result.causes()] == [(1, "REQUIRED_FIELD_MISSING")]
    with pytest.raises(ValidationError, match="record 1"):
        result.raise_for_errors()
    assert len(list(access.query(soql("SELECT Id FROM Account WHERE Name = {n}", n=f"{run}-ok")))) == 1


def test_raise_for_errors_on_echoes_only_and_on_success() -> None:
    from salesforce_access import CompositeResult

    halted = CompositeResult.model_validate({"responses": [
        {"referenceId": "a", "httpStatusCode": 400, "body": [{"errorCode": "PROCESSING_HALTED", "message": "x"}]}]})
    with pytest.raises(ValidationError) as info:
        halted.raise_for_errors()
    assert info.value.error_code == "PROCESSING_HALTED"  # nothing better to report
    fine = CompositeResult.model_validate({"responses": [
        {"referenceId": "a", "httpStatusCode": 201, "body": {"id": "001000000000001AAA", "success": True}},
        {"referenceId": "b", "httpStatusCode": 200, "body": [{"id": "003000000000001AAA", "success": True}]}]})
    assert fine.ok
    assert fine.errors() == []
    fine.raise_for_errors()  # no exception
    locked = CompositeResult.model_validate({"responses": [
        {"referenceId": "b", "httpStatusCode": 200, "body": [
            {"success": False, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked"}]}]}]})
    with pytest.raises(RowLocked):
        locked.raise_for_errors()


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
