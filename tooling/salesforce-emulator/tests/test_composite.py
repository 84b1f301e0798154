"""Composite, sObject Collections, sObject Tree and Composite Graph driven through simple-salesforce."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from simple_salesforce import Salesforce, SalesforceMalformedRequest, SalesforceResourceNotFound, format_soql

from salesforce_emulator import Emulator

V = "/services/data/v62.0"


def tag() -> str:
    """A unique marker per test: the emulator is shared by the whole session."""
    return uuid.uuid4().hex[:10]


def count(sf: Salesforce, sobject: str, field: str, value: str) -> int:
    """How many live records have ``field = value``: what a request committed or rolled back."""
    return sf.query(format_soql("SELECT COUNT() FROM {:literal} WHERE {:literal} = {}", sobject, field,
                                value))["totalSize"]


def composite(sf: Salesforce, requests: list[dict], all_or_none: bool | None = None) -> list[dict]:
    body: dict = {"compositeRequest": requests}
    if all_or_none is not None:
        body["allOrNone"] = all_or_none
    return sf.restful("composite", method="POST", json=body)["compositeResponse"]


def post(ref: str, sobject: str, body: dict) -> dict:
    return {"method": "POST", "url": f"{V}/sobjects/{sobject}", "referenceId": ref, "body": body}


def bad_request(call: Callable[[], object]) -> list | dict:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        call()
    return exc.value.content


# -- /composite -----------------------------------------------------------------------------------

def test_composite_creates_account_and_contact_through_references(sf: Salesforce) -> None:
    t = tag()
    result = composite(sf, [
        post("refAccount", "Account", {"Name": f"Acme {t}"}),
        post("refContact", "Contact", {"LastName": f"Smith {t}", "AccountId": "@{refAccount.id}"}),
        {"method": "PATCH", "url": f"{V}/sobjects/Contact/@{{refContact.id}}", "referenceId": "refUpdate",
         "body": {"Title": "Buyer"}},
        {"method": "GET", "url": f"{V}/sobjects/Contact/@{{refContact.id}}?fields=Title,AccountId",
         "referenceId": "refGet"},
    ], all_or_none=True)

    account, contact, update, get = result
    assert [r["referenceId"] for r in result] == ["refAccount", "refContact", "refUpdate", "refGet"]
    assert account["httpStatusCode"] == 201
    assert account["body"]["success"] is True
    assert account["body"]["errors"] == []
    assert account["httpHeaders"]["Location"] == f"{V}/sobjects/Account/{account['body']['id']}"
    assert contact["httpStatusCode"] == 201
    assert update == {"body": None, "httpHeaders": {}, "httpStatusCode": 204, "referenceId": "refUpdate"}
    assert get["httpStatusCode"] == 200
    assert get["body"]["Title"] == "Buyer"
    assert get["body"]["AccountId"] == account["body"]["id"]
    assert sf.Contact.get(contact["body"]["id"])["AccountId"] == account["body"]["id"]


def test_query_result_is_referenced_by_later_subrequests(sf: Salesforce) -> None:
    t = tag()
    account_id = sf.Account.create({"Name": f"Queried {t}"})["id"]
    result = composite(sf, [
        {"method": "GET", "url": f"{V}/query/?q=SELECT+Id,Name+FROM+Account+WHERE+Name='Queried+{t}'",
         "referenceId": "refQuery"},
        {"method": "PATCH", "url": f"{V}/sobjects/Account/@{{refQuery.records[0].Id}}", "referenceId": "refPatch",
         "body": {"Description": "seen by @{refQuery.records[0].Name}"}},
        post("refContact", "Contact", {"LastName": t, "AccountId": "@{refQuery.records[0].Id}"}),
    ])
    assert [r["httpStatusCode"] for r in result] == [200, 204, 201]
    assert result[0]["body"]["totalSize"] == 1
    assert sf.Account.get(account_id)["Description"] == f"seen by Queried {t}"
    assert sf.Contact.get(result[2]["body"]["id"])["AccountId"] == account_id


def test_all_or_none_failure_rolls_back_and_halts_the_rest(sf: Salesforce) -> None:
    t = tag()
    result = composite(sf, [
        post("refAccount", "Account", {"Name": f"Rolled {t}"}),
        post("refBad", "Contact", {"FirstName": t, "AccountId": "@{refAccount.id}"}),  # LastName missing
        post("refAfter", "Account", {"Name": f"Rolled {t}"}),
    ], all_or_none=True)

    halted = [{"errorCode": "PROCESSING_HALTED",
               "message": "The transaction was rolled back since another operation in the same transaction failed."}]
    assert result[0] == {"body": halted, "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "refAccount"}
    assert result[1]["httpStatusCode"] == 400
    assert result[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert result[1]["body"][0]["fields"] == ["LastName"]
    assert result[2]["body"] == halted
    assert count(sf, "Account", "Name", f"Rolled {t}") == 0
    assert count(sf, "Contact", "FirstName", t) == 0


def test_partial_success_commits_independent_subrequests_and_halts_dependants(sf: Salesforce) -> None:
    t = tag()
    result = composite(sf, [
        post("refGood", "Account", {"Name": f"Partial {t}"}),
        post("refBad", "Account", {"Description": t}),  # Name missing
        post("refOrphan", "Contact", {"LastName": f"Orphan {t}", "AccountId": "@{refBad.id}"}),
        post("refChild", "Contact", {"LastName": f"Child {t}", "AccountId": "@{refGood.id}"}),
    ], all_or_none=False)

    assert [r["httpStatusCode"] for r in result] == [201, 400, 400, 201]
    assert result[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert result[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert "refBad.id" in result[2]["body"][0]["message"]
    assert count(sf, "Account", "Name", f"Partial {t}") == 1
    assert count(sf, "Contact", "LastName", f"Orphan {t}") == 0
    assert sf.Contact.get(result[3]["body"]["id"])["AccountId"] == result[0]["body"]["id"]


def test_reference_to_a_missing_path_halts_that_subrequest(sf: Salesforce) -> None:
    t = tag()
    result = composite(sf, [
        post("refAccount", "Account", {"Name": f"Paths {t}"}),
        post("refContact", "Contact", {"LastName": t, "AccountId": "@{refAccount.records[0].Id}"}),
        post("refLater", "Contact", {"LastName": t, "AccountId": "@{refNotYet.id}"}),
        post("refNotYet", "Account", {"Name": f"Paths {t}"}),
    ])
    assert [r["httpStatusCode"] for r in result] == [201, 400, 400, 201]
    assert {r["body"][0]["errorCode"] for r in result[1:3]} == {"PROCESSING_HALTED"}
    assert "refNotYet" in result[2]["body"][0]["message"]


def test_subrequest_errors_keep_their_real_status(sf: Salesforce) -> None:
    result = composite(sf, [
        {"method": "GET", "url": f"{V}/sobjects/Account/001000000000000AAA", "referenceId": "refMissing"},
        {"method": "GET", "url": f"{V}/sobjects/NoSuchThing__c/001000000000000AAA", "referenceId": "refType"},
        {"method": "GET", "url": f"{V}/query?q=SELECT+Nope+FROM+Account", "referenceId": "refSoql"},
        {"method": "PUT", "url": f"{V}/sobjects/Account", "referenceId": "refMethod"},
        {"method": "GET", "url": "/services/data/v20.0/sobjects/Account", "referenceId": "refVersion"},
    ])
    assert [r["httpStatusCode"] for r in result] == [404, 404, 400, 405, 404]
    assert result[0]["body"][0]["errorCode"] == "NOT_FOUND"
    assert result[2]["body"][0]["errorCode"] in ("INVALID_FIELD", "MALFORMED_QUERY")
    assert result[3]["body"][0]["errorCode"] == "METHOD_NOT_ALLOWED"


def test_whole_composite_counts_as_one_api_request(sf: Salesforce, emu: Emulator) -> None:
    t = tag()
    emu.clear_requests()
    used_before, _ = emu.api_usage()
    result = composite(sf, [post(f"ref{i}", "Account", {"Name": f"Counted {t}"}) for i in range(10)])
    assert all(r["httpStatusCode"] == 201 for r in result)
    assert emu.api_usage()[0] == used_before + 1
    logged = [(r["method"], r["path"]) for r in emu.requests()]
    assert logged == [("POST", f"{V}/composite")]


def test_composite_embeds_collections_and_overrides_their_all_or_none(sf: Salesforce) -> None:
    t = tag()
    collection = {"method": "POST", "url": f"{V}/composite/sobjects", "referenceId": "refRecords",
                  "body": {"allOrNone": False, "records": [
                      {"attributes": {"type": "Account"}, "Name": f"Embedded {t}"},
                      {"attributes": {"type": "Account"}, "Description": "no name"}]}}
    result = composite(sf, [post("refFirst", "Account", {"Name": f"Embedded {t}"}), collection],
                       all_or_none=True)
    assert result[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert result[1]["body"][1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert count(sf, "Account", "Name", f"Embedded {t}") == 0

    # without allOrNone the collection's own allOrNone:false applies and its good record commits
    result = composite(sf, [collection, post("refId", "Contact",
                                             {"LastName": t, "AccountId": "@{refRecords[0].id}"})])
    assert [r["httpStatusCode"] for r in result] == [200, 201]
    assert count(sf, "Account", "Name", f"Embedded {t}") == 1


def test_more_than_25_subrequests_is_refused_and_nothing_runs(sf: Salesforce) -> None:
    t = tag()
    errors = bad_request(lambda: composite(sf, [post(f"r{i}", "Account", {"Name": t}) for i in range(26)]))
    assert errors[0]["errorCode"] == "LIMIT_EXCEEDED"
    assert "25" in errors[0]["message"]
    assert count(sf, "Account", "Name", t) == 0


def test_more_than_5_query_or_collection_subrequests_is_refused(sf: Salesforce) -> None:
    t = tag()
    queries = [{"method": "GET", "url": f"{V}/query?q=SELECT+Id+FROM+Account+LIMIT+1", "referenceId": f"q{i}"}
               for i in range(6)]
    errors = bad_request(lambda: composite(sf, [post("first", "Account", {"Name": t}), *queries]))
    assert errors[0]["errorCode"] == "LIMIT_EXCEEDED"
    assert count(sf, "Account", "Name", t) == 0
    assert len(composite(sf, queries[:5])) == 5


@pytest.mark.parametrize("case", [
    "no_composite_request", "not_a_list", "empty", "missing_reference_id", "missing_method", "missing_url",
    "duplicate_reference_id", "illegal_reference_id", "unsupported_url", "bad_method", "all_or_none_not_bool",
    "subrequest_not_object",
])
def test_malformed_composite_body_executes_nothing(sf: Salesforce, case: str) -> None:
    t = tag()
    good = post("refGood", "Account", {"Name": t})
    subrequests: object = {
        "no_composite_request": None,
        "not_a_list": {"refGood": good},
        "empty": [],
        "missing_reference_id": [good, {"method": "GET", "url": f"{V}/limits"}],
        "missing_method": [good, {"url": f"{V}/sobjects/Account", "referenceId": "x"}],
        "missing_url": [good, {"method": "GET", "referenceId": "x"}],
        "duplicate_reference_id": [good, post("refGood", "Account", {"Name": t})],
        "illegal_reference_id": [good, post("ref-bad", "Account", {"Name": t})],
        "unsupported_url": [good, {"method": "GET", "url": "/sobjects/Account", "referenceId": "x"}],
        "bad_method": [good, {"method": "FETCH", "url": f"{V}/sobjects/Account", "referenceId": "x"}],
        "all_or_none_not_bool": [good],
        "subrequest_not_object": [good, "GET /sobjects"],
    }[case]
    body: dict = {} if subrequests is None else {"compositeRequest": subrequests}
    if case == "all_or_none_not_bool":
        body["allOrNone"] = "yes"
    errors = bad_request(lambda: sf.restful("composite", method="POST", json=body))
    assert isinstance(errors, list)
    assert errors[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert errors[0]["message"]
    assert count(sf, "Account", "Name", t) == 0


def test_composite_body_that_is_not_json(sf: Salesforce) -> None:
    errors = bad_request(lambda: sf.restful("composite", method="POST", data="{not json",
                                            headers={"Content-Type": "application/json"}))
    assert errors[0]["errorCode"] == "JSON_PARSER_ERROR"


# -- sObject Collections ----------------------------------------------------------------------------

def accounts(t: str, n: int) -> list[dict]:
    return [{"attributes": {"type": "Account"}, "Name": f"Bulk {t}", "AccountNumber": str(i)} for i in range(n)]


def test_collections_create_200_records_and_refuse_201(sf: Salesforce) -> None:
    t = tag()
    results = sf.restful("composite/sobjects", method="POST", json={"records": accounts(t, 200)})
    assert len(results) == 200
    assert all(r["success"] is True and r["errors"] == [] and r["id"].startswith("001") for r in results)
    assert len({r["id"] for r in results}) == 200
    numbers = [sf.Account.get(results[i]["id"])["AccountNumber"] for i in (0, 199)]
    assert numbers == ["0", "199"]  # results come back in request order

    u = tag()
    errors = bad_request(lambda: sf.restful("composite/sobjects", method="POST", json={"records": accounts(u, 201)}))
    assert errors[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert count(sf, "Account", "Name", f"Bulk {u}") == 0


def test_collections_report_per_record_errors_in_status_code_envelope(sf: Salesforce) -> None:
    t = tag()
    sf.Account.create({"Name": f"Existing {t}", "ERP_Customer_Id__c": f"ERP-{t}"})
    results = sf.restful("composite/sobjects", method="POST", json={"records": [
        {"attributes": {"type": "Account"}, "Name": f"Fine {t}"},
        {"attributes": {"type": "Account"}, "Description": "no name"},
        {"attributes": {"type": "Account"}, "Name": f"Dup {t}", "ERP_Customer_Id__c": f"erp-{t}"},
        {"attributes": {"type": "Contact"}, "LastName": f"Fine {t}"},
    ]})
    assert results[0]["success"] is True
    assert results[1] == {"success": False, "errors": [
        {"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Name]",
         "fields": ["Name"]}]}
    assert results[2]["success"] is False
    assert results[2]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    assert results[2]["errors"][0]["fields"] == ["ERP_Customer_Id__c"]
    assert results[3]["success"] is True
    assert results[3]["id"].startswith("003")
    assert count(sf, "Account", "Name", f"Fine {t}") == 1
    assert count(sf, "Account", "Name", f"Dup {t}") == 0


def test_collections_all_or_none_rolls_back_every_record(sf: Salesforce) -> None:
    t = tag()
    results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": [
        {"attributes": {"type": "Account"}, "Name": f"Atomic {t}"},
        {"attributes": {"type": "Account"}, "NumberOfEmployees": "many"},
        {"attributes": {"type": "Account"}, "Name": f"Atomic {t}"},
    ]})
    rolled_back = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                   "message": "Record rolled back because not all records were valid and the request was using "
                              "AllOrNone header", "fields": []}
    assert results[0] == {"success": False, "errors": [rolled_back]}
    assert results[1]["success"] is False
    assert results[1]["errors"][0]["statusCode"] != "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[2] == {"success": False, "errors": [rolled_back]}
    assert count(sf, "Account", "Name", f"Atomic {t}") == 0


def test_collections_create_rejects_bad_records_one_by_one(sf: Salesforce) -> None:
    t = tag()
    results = sf.restful("composite/sobjects", method="POST", json={"records": [
        {"attributes": {"type": "Account"}, "Name": f"Typed {t}", "id": "001000000000000AAA"},
        {"Name": f"Typed {t}"},
        {"attributes": {"type": "Nope__c"}, "Name": f"Typed {t}"},
        {"attributes": {"type": "Account"}, "Name": f"Typed {t}", "Bogus__c": 1},
        {"attributes": {"type": "Account"}, "Name": f"Typed {t}"},
    ]})
    codes = [r["errors"][0]["statusCode"] if not r["success"] else "OK" for r in results]
    assert codes == ["INVALID_FIELD", "INVALID_TYPE", "INVALID_TYPE", "INVALID_FIELD", "OK"]
    assert count(sf, "Account", "Name", f"Typed {t}") == 1


def test_collections_refuse_more_than_ten_chunks(sf: Salesforce) -> None:
    t = tag()
    alternating = [{"attributes": {"type": "Account" if i % 2 else "Contact"}, "Name": f"Chunk {t}",
                    "LastName": "x"} for i in range(11)]
    errors = bad_request(lambda: sf.restful("composite/sobjects", method="POST", json={"records": alternating}))
    assert errors[0]["errorCode"] == "LIMIT_EXCEEDED"
    assert "10 chunks" in errors[0]["message"]


@pytest.mark.parametrize("body", [
    [{"attributes": {"type": "Account"}, "Name": "not wrapped"}],
    {"records": {"attributes": {"type": "Account"}}},
    {"allOrNone": "true", "records": []},
    {"records": ["Account"]},
    {"allOrNone": False},
])
def test_collections_malformed_bodies(sf: Salesforce, body: object) -> None:
    errors = bad_request(lambda: sf.restful("composite/sobjects", method="POST", json=body))
    assert errors[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_collections_update(sf: Salesforce) -> None:
    t = tag()
    first = sf.Account.create({"Name": f"Upd {t}"})["id"]
    second = sf.Account.create({"Name": f"Upd {t}"})["id"]
    results = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Account"}, "id": first, "Phone": "1"},
        {"attributes": {"type": "Account"}, "Phone": "2"},
        {"attributes": {"type": "Account"}, "id": "001000000000000AAA", "Phone": "3"},
        {"attributes": {"type": "Account"}, "id": second, "Phone": "4"},
    ]})
    assert results[0] == {"id": first, "success": True, "errors": []}
    assert results[1]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert results[2]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert results[3]["success"] is True
    assert [sf.Account.get(i)["Phone"] for i in (first, second)] == ["1", "4"]


def test_collections_upsert_reports_created(sf: Salesforce) -> None:
    t = tag()
    existing = sf.Account.create({"Name": f"Old {t}", "ERP_Customer_Id__c": f"U1-{t}"})["id"]
    results = sf.restful("composite/sobjects/Account/ERP_Customer_Id__c", method="PATCH", json={"records": [
        {"attributes": {"type": "Account"}, "ERP_Customer_Id__c": f"U1-{t}", "Name": f"New {t}"},
        {"attributes": {"type": "Account"}, "ERP_Customer_Id__c": f"U2-{t}", "Name": f"New {t}"},
        {"attributes": {"type": "Account"}, "Name": f"New {t}"},
    ]})
    assert results[0] == {"id": existing, "success": True, "errors": [], "created": False}
    assert results[1]["created"] is True
    assert results[1]["success"] is True
    assert results[2]["success"] is False
    assert results[2]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert sf.Account.get(existing)["Name"] == f"New {t}"
    assert sf.Account.get_by_custom_id("ERP_Customer_Id__c", f"U2-{t}")["Id"] == results[1]["id"]

    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("composite/sobjects/Account/Name", method="PATCH", json={"records": []})


def test_collections_delete(sf: Salesforce) -> None:
    t = tag()
    made = [r["id"] for r in sf.restful("composite/sobjects", method="POST", json={"records": accounts(t, 3)})]
    # allOrNone: one unknown id keeps every record
    results = sf.restful("composite/sobjects", method="DELETE",
                         params={"ids": f"{made[0]},001000000000000AAA", "allOrNone": "true"})
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert count(sf, "Account", "Name", f"Bulk {t}") == 3

    results = sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(made[:2])})
    assert results == [{"id": made[0], "success": True, "errors": []}, {"id": made[1], "success": True, "errors": []}]
    results = sf.restful("composite/sobjects", method="DELETE", params={"ids": f"{made[0]},{made[2]},bogus"})
    assert [r["success"] for r in results] == [False, True, False]
    assert results[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert results[2]["errors"][0]["statusCode"] == "MALFORMED_ID"
    assert count(sf, "Account", "Name", f"Bulk {t}") == 0

    assert bad_request(lambda: sf.restful("composite/sobjects", method="DELETE"))[0]["errorCode"] == \
        "MISSING_ARGUMENT"
    too_many = ",".join([made[0]] * 201)
    assert bad_request(lambda: sf.restful("composite/sobjects", method="DELETE",
                                          params={"ids": too_many}))[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_collections_retrieve_by_get_and_post(sf: Salesforce) -> None:
    t = tag()
    first = sf.Account.create({"Name": f"Get {t}", "Phone": "9"})["id"]
    contact = sf.Contact.create({"LastName": t})["id"]
    got = sf.restful("composite/sobjects/Account", params={"ids": f"{first},{contact}", "fields": "Name,Phone"})
    assert got[0]["attributes"]["type"] == "Account"
    assert (got[0]["Name"], got[0]["Phone"]) == (f"Get {t}", "9")
    assert got[1] is None  # an id of another type is not found
    posted = sf.restful("composite/sobjects/Account", method="POST", json={"ids": [first], "fields": ["Id"]})
    assert posted[0]["Id"] == first

    bad_field = bad_request(lambda: sf.restful("composite/sobjects/Account", params={"ids": first, "fields": "Nope"}))
    assert bad_field[0]["errorCode"] == "INVALID_FIELD"
    assert bad_request(lambda: sf.restful("composite/sobjects/Account", params={"ids": first}))[0]["errorCode"] == \
        "MISSING_ARGUMENT"
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("composite/sobjects/Nope__c", params={"ids": first, "fields": "Name"})


def test_collections_publish_platform_events(sf: Salesforce, emu: Emulator) -> None:
    t = tag()
    assert emu.app is not None
    before = emu.app.events.latest_replay_id("/event/Shipment_Status__e")  # type: ignore[attr-defined]
    results = sf.restful("composite/sobjects", method="POST", json={"records": [
        {"attributes": {"type": "Shipment_Status__e"}, "Tracking_Number__c": t, "Status__c": "Delivered"},
        {"attributes": {"type": "Shipment_Status__e"}, "Tracking_Number__c": t},
    ]})
    assert results[0]["success"] is True
    assert results[0]["id"].startswith("e00")
    assert results[0]["errors"][0]["statusCode"] == "OPERATION_ENQUEUED"
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    published = emu.app.events.since("/event/Shipment_Status__e", before)  # type: ignore[attr-defined]
    assert [e["data"]["payload"]["Tracking_Number__c"] for e in published] == [t]
    assert published[0]["data"]["event"]["EventUuid"] == results[0]["errors"][0]["message"]


# -- sObject Tree -----------------------------------------------------------------------------------

def tree_record(ref: str, sobject: str, **fields: object) -> dict:
    return {"attributes": {"type": sobject, "referenceId": ref}, **fields}


def test_tree_inserts_accounts_with_nested_contacts(sf: Salesforce) -> None:
    t = tag()
    body = {"records": [
        tree_record("acc1", "Account", Name=f"Tree {t}", Contacts={"records": [
            tree_record("con1", "Contact", LastName=f"One {t}"),
            tree_record("con2", "Contact", LastName=f"Two {t}")]}),
        tree_record("acc2", "Account", Name=f"Tree {t}"),
    ]}
    result = sf.restful("composite/tree/Account", method="POST", json=body)
    assert result["hasErrors"] is False
    ids = {r["referenceId"]: r["id"] for r in result["results"]}
    assert list(ids) == ["acc1", "con1", "con2", "acc2"]
    assert ids["acc1"].startswith("001")
    assert ids["con1"].startswith("003")
    assert {sf.Contact.get(ids[c])["AccountId"] for c in ("con1", "con2")} == {ids["acc1"]}
    assert count(sf, "Account", "Name", f"Tree {t}") == 2


def test_tree_failure_rolls_back_the_whole_request(sf: Salesforce) -> None:
    t = tag()
    body = {"records": [tree_record("acc1", "Account", Name=f"Doomed {t}", Contacts={"records": [
        tree_record("con1", "Contact", LastName=f"Doomed {t}"),
        tree_record("con2", "Contact", FirstName=t)]})]}
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("composite/tree/Account", method="POST", json=body)
    assert exc.value.status == 400
    assert exc.value.content == {"hasErrors": True, "results": [{"referenceId": "con2", "errors": [
        {"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]",
         "fields": ["LastName"]}]}]}
    assert count(sf, "Account", "Name", f"Doomed {t}") == 0
    assert count(sf, "Contact", "LastName", f"Doomed {t}") == 0


def test_tree_duplicate_reference_ids_report_each_instance(sf: Salesforce) -> None:
    t = tag()
    body = {"records": [tree_record("same", "Account", Name=f"Twice {t}"),
                        tree_record("same", "Account", Name=f"Twice {t}")]}
    content = bad_request(lambda: sf.restful("composite/tree/Account", method="POST", json=body))
    assert content["hasErrors"] is True
    assert [r["referenceId"] for r in content["results"]] == ["same", "same"]
    assert count(sf, "Account", "Name", f"Twice {t}") == 0


def nested(depth: int, t: str) -> dict:
    record = tree_record(f"lvl{depth}", "Account", Name=f"Deep {t}")
    if depth > 1:
        record["Accounts"] = {"records": [nested(depth - 1, t)]}
    return record


@pytest.mark.parametrize(("case", "code"), [
    ("missing_reference_id", "JSON_PARSER_ERROR"),
    ("illegal_reference_id", "JSON_PARSER_ERROR"),
    ("no_records", "JSON_PARSER_ERROR"),
    ("child_not_records", "JSON_PARSER_ERROR"),
    ("too_many_records", "EXCEEDED_ID_LIMIT"),
    ("too_deep", "LIMIT_EXCEEDED"),
])
def test_tree_malformed_bodies(sf: Salesforce, case: str, code: str) -> None:
    t = tag()
    body = {
        "missing_reference_id": {"records": [{"attributes": {"type": "Account"}, "Name": f"Deep {t}"}]},
        "illegal_reference_id": {"records": [tree_record("a-1", "Account", Name=f"Deep {t}")]},
        "no_records": {"Name": f"Deep {t}"},
        "child_not_records": {"records": [tree_record("a1", "Account", Name=f"Deep {t}",
                                                      Contacts={"LastName": "x"})]},
        "too_many_records": {"records": [tree_record(f"a{i}", "Account", Name=f"Deep {t}") for i in range(201)]},
        "too_deep": {"records": [nested(6, t)]},
    }[case]
    errors = bad_request(lambda: sf.restful("composite/tree/Account", method="POST", json=body))
    assert errors[0]["errorCode"] == code
    assert count(sf, "Account", "Name", f"Deep {t}") == 0


def test_tree_five_levels_and_record_errors(sf: Salesforce) -> None:
    t = tag()
    result = sf.restful("composite/tree/Account", method="POST", json={"records": [nested(5, t)]})
    assert len(result["results"]) == 5
    wrong_type = {"records": [tree_record("c1", "Contact", LastName=t)]}
    content = bad_request(lambda: sf.restful("composite/tree/Account", method="POST", json=wrong_type))
    assert content["results"][0]["errors"][0]["statusCode"] == "INVALID_TYPE"
    unknown_field = {"records": [tree_record("a1", "Account", Name=t, Nope__c=1)]}
    content = bad_request(lambda: sf.restful("composite/tree/Account", method="POST", json=unknown_field))
    assert content["results"][0]["errors"][0]["statusCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("composite/tree/Nope__c", method="POST", json=wrong_type)


# -- Composite Graph --------------------------------------------------------------------------------

def test_graphs_succeed_or_fail_independently(sf: Salesforce, emu: Emulator) -> None:
    t = tag()
    emu.clear_requests()
    result = sf.restful("composite/graph", method="POST", json={"graphs": [
        {"graphId": "good", "compositeRequest": [
            post("acc", "Account", {"Name": f"Graph {t}"}),
            post("con", "Contact", {"LastName": f"Graph {t}", "AccountId": "@{acc.id}"})]},
        {"graphId": "bad", "compositeRequest": [
            post("acc", "Account", {"Name": f"Graph bad {t}"}),
            post("con", "Contact", {"FirstName": t, "AccountId": "@{acc.id}"})]},
    ]})
    assert [r["path"] for r in emu.requests()] == [f"{V}/composite/graph"]  # one API call for every graph
    good, bad = result["graphs"]
    assert (good["graphId"], good["isSuccessful"]) == ("good", True)
    assert [r["httpStatusCode"] for r in good["graphResponse"]["compositeResponse"]] == [201, 201]
    assert (bad["graphId"], bad["isSuccessful"]) == ("bad", False)
    assert bad["graphResponse"]["compositeResponse"][0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert count(sf, "Account", "Name", f"Graph {t}") == 1
    assert count(sf, "Account", "Name", f"Graph bad {t}") == 0

    errors = bad_request(lambda: sf.restful("composite/graph", method="POST", json={"graphs": [
        {"graphId": "g", "compositeRequest": [{"method": "GET", "url": f"{V}/query?q=SELECT+Id+FROM+Account",
                                               "referenceId": "q"}]}]}))
    assert errors[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_resources_newer_than_the_requested_version_do_not_exist(sf: Salesforce) -> None:
    old = sf.base_url.replace("/v62.0/", "/v45.0/")
    upsert = sf.session.request("PATCH", f"{old}composite/sobjects/Account/ERP_Customer_Id__c", headers=sf.headers,
                                json={"records": []}, timeout=10)
    graph = sf.session.request("POST", f"{old}composite/graph", headers=sf.headers, json={"graphs": []}, timeout=10)
    assert (upsert.status_code, graph.status_code) == (404, 404)
    assert upsert.json()[0]["errorCode"] == "NOT_FOUND"
