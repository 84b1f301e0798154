"""sObject CRUD, upsert, describe, query paging and validation errors through simple-salesforce."""

from __future__ import annotations

import pytest
import requests
from simple_salesforce import (
    Salesforce,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
    format_soql,
)

from salesforce_emulator import Emulator


def errors_of(exc: pytest.ExceptionInfo) -> list[dict]:
    return exc.value.content


def raw(sf: Salesforce, method: str, path: str, **kwargs) -> requests.Response:
    """A request outside simple-salesforce's helpers, to see status codes and headers as sent."""
    return sf.session.request(method, f"{sf.base_url}{path}", headers=sf.headers, timeout=10, **kwargs)


def test_create_get_update_delete_round_trip(sf: Salesforce) -> None:
    created = sf.Account.create({"Name": "Round Trip", "NumberOfEmployees": 12, "Website": "https://x.example"})
    assert created["success"] is True
    assert created["errors"] == []
    account_id = created["id"]
    assert account_id.startswith("001")
    assert len(account_id) == 18

    record = sf.Account.get(account_id)
    assert record["attributes"]["type"] == "Account"
    assert record["Name"] == "Round Trip"
    assert record["NumberOfEmployees"] == 12
    assert record["IsDeleted"] is False
    assert record["CreatedDate"].endswith("+0000")
    assert record["LastModifiedById"].startswith("005")
    assert record["OwnerId"] == record["CreatedById"]  # the creating user owns the record by default

    assert sf.Account.update(account_id, {"Name": "Renamed"}) == 204
    assert sf.Account.get(account_id)["Name"] == "Renamed"
    # a 15-character id addresses the same record
    assert sf.Account.get(account_id[:15])["Id"] == account_id

    assert sf.Account.delete(account_id) == 204
    with pytest.raises(SalesforceResourceNotFound) as gone:
        sf.Account.get(account_id)
    assert errors_of(gone)[0]["errorCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceResourceNotFound) as again:
        sf.Account.delete(account_id)
    assert errors_of(again)[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_create_answers_201_with_location(sf: Salesforce) -> None:
    resp = raw(sf, "POST", "sobjects/Account/", json={"Name": "Located"})
    assert resp.status_code == 201
    assert resp.headers["Location"].endswith(resp.json()["id"])
    assert resp.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_get_with_field_list(sf: Salesforce) -> None:
    account_id = sf.Account.create({"Name": "Fields", "Phone": "555"})["id"]
    record = raw(sf, "GET", f"sobjects/Account/{account_id}", params={"fields": "Name,Phone"}).json()
    assert list(record) == ["attributes", "Name", "Phone"]


def test_upsert_by_external_id_creates_then_updates(sf: Salesforce) -> None:
    first = raw(sf, "PATCH", "sobjects/Account/ERP_Customer_Id__c/UPS-1", json={"Name": "Upserted"})
    assert first.status_code == 201
    assert first.json()["created"] is True
    second = raw(sf, "PATCH", "sobjects/Account/ERP_Customer_Id__c/UPS-1", json={"Name": "Upserted again"})
    assert second.status_code == 200
    assert second.json() == {"id": first.json()["id"], "success": True, "errors": [], "created": False}
    assert sf.Account.get_by_custom_id("ERP_Customer_Id__c", "UPS-1")["Name"] == "Upserted again"
    # simple-salesforce returns the status code
    assert sf.Account.upsert("ERP_Customer_Id__c/UPS-1", {"Phone": "1"}) == 200


def test_upsert_before_api_46_answers_204(sf: Salesforce) -> None:
    raw(sf, "PATCH", "sobjects/Account/ERP_Customer_Id__c/OLD-1", json={"Name": "Old API"})
    old = sf.session.patch(f"{sf.base_url.replace('v62.0', 'v45.0')}sobjects/Account/ERP_Customer_Id__c/OLD-1",
                           json={"Name": "Old API 2"}, headers=sf.headers, timeout=10)
    assert old.status_code == 204
    assert old.content == b""


def test_external_id_matching_is_case_insensitive_and_unique(sf: Salesforce) -> None:
    sf.Account.create({"Name": "Case", "ERP_Customer_Id__c": "case-1"})
    with pytest.raises(SalesforceMalformedRequest) as dup:
        sf.Account.create({"Name": "Case 2", "ERP_Customer_Id__c": "CASE-1"})
    assert errors_of(dup)[0]["errorCode"] == "DUPLICATE_VALUE"
    assert errors_of(dup)[0]["fields"] == ["ERP_Customer_Id__c"]
    assert sf.Account.get_by_custom_id("ERP_Customer_Id__c", "CASE-1")["Name"] == "Case"


def test_several_matches_on_a_non_unique_external_id_answer_300(emulator: Emulator) -> None:
    extra = "tooling/salesforce-emulator/tests/fixtures/extra_schema.toml"
    with Emulator(schema_files=[extra]) as emu:
        from salesforce_emulator.connection import fetch_token, https_session

        session = https_session(emu.info)
        sf = Salesforce(instance_url=emu.info["instance_url"], session_id=fetch_token(emu.info, session),
                        session=session, version="62.0")
        sf.Contact.create({"LastName": "A", "Legacy_Key__c": "dup"})
        sf.Contact.create({"LastName": "B", "Legacy_Key__c": "dup"})
        with pytest.raises(SalesforceMoreThanOneRecord):
            sf.Contact.upsert("Legacy_Key__c/dup", {"LastName": "C"})
        resp = raw(sf, "GET", "sobjects/Contact/Legacy_Key__c/dup")
        assert resp.status_code == 300
        assert len(resp.json()) == 2
        # the extension file added a whole object too
        assert sf.Warehouse__c.create({"Name": "North", "Code__c": "N1"})["success"] is True
        assert sf.Warehouse__c.describe()["keyPrefix"] == "a05"


def test_relationship_set_by_parent_external_id(sf: Salesforce) -> None:
    sf.Account.create({"Name": "Parent", "ERP_Customer_Id__c": "PARENT-1"})
    contact_id = sf.Contact.create({"LastName": "Child", "Account": {"ERP_Customer_Id__c": "PARENT-1"}})["id"]
    contact = sf.Contact.get(contact_id)
    assert sf.Account.get(contact["AccountId"])["ERP_Customer_Id__c"] == "PARENT-1"
    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.Contact.create({"LastName": "Orphan", "Account": {"ERP_Customer_Id__c": "NOPE"}})
    assert "Foreign key external ID: NOPE not found" in errors_of(missing)[0]["message"]


@pytest.mark.parametrize(
    ("sobject", "body", "code", "fields"),
    [
        ("Account", {}, "REQUIRED_FIELD_MISSING", ["Name"]),
        ("Account", {"Name": "x", "Bogus__c": 1}, "INVALID_FIELD", ["Bogus__c"]),
        ("Account", {"Name": "x" * 256}, "STRING_TOO_LONG", ["Name"]),
        ("Account", {"Name": "x", "NumberOfEmployees": "many"}, "JSON_PARSER_ERROR", []),
        ("Account", {"Name": "x", "Id": "001000000000000AAA"}, "INVALID_FIELD", ["Id"]),
        ("Account", {"Name": "x", "CreatedDate": "2020-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE",
         ["CreatedDate"]),
        ("Contact", {"LastName": "x", "AccountId": "not-an-id"}, "MALFORMED_ID", ["AccountId"]),
        ("Contact", {"LastName": "x", "AccountId": "001000000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY",
         ["AccountId"]),
        ("Contract", {"AccountId": None, "Status": "Draft"}, "REQUIRED_FIELD_MISSING", ["AccountId"]),
        ("Order", {"Name": "x"}, "INVALID_FIELD", ["Name"]),
    ],
)
def test_validation_errors_use_salesforce_codes(sf: Salesforce, sobject: str, body: dict, code: str,
                                                fields: list[str]) -> None:
    with pytest.raises(SalesforceMalformedRequest) as failed:
        getattr(sf, sobject).create(body)
    error = errors_of(failed)[0]
    assert error["errorCode"] == code
    assert error["fields"] == fields
    assert error["message"]


def test_reference_to_the_wrong_object_type_is_refused(sf: Salesforce) -> None:
    product_id = sf.Product2.create({"Name": "Widget"})["id"]
    with pytest.raises(SalesforceMalformedRequest) as failed:
        sf.Contact.create({"LastName": "x", "AccountId": product_id})
    assert errors_of(failed)[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_malformed_json_and_wrong_shapes(sf: Salesforce) -> None:
    bad_json = raw(sf, "POST", "sobjects/Account/", data=b"{not json", )
    assert bad_json.status_code == 400
    assert bad_json.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    a_list = raw(sf, "POST", "sobjects/Account/", json=[{"Name": "x"}])
    assert a_list.status_code == 400
    assert a_list.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_unknown_resources_and_methods(sf: Salesforce) -> None:
    unknown_object = raw(sf, "GET", "sobjects/Nope__c/describe")
    assert unknown_object.status_code == 404
    assert unknown_object.json()[0]["errorCode"] == "NOT_FOUND"
    bad_id = raw(sf, "GET", "sobjects/Account/xyz")
    assert bad_id.status_code == 404
    not_ext_id = raw(sf, "PATCH", "sobjects/Account/Name/Acme", json={"Phone": "1"})
    assert not_ext_id.status_code == 404
    wrong_method = raw(sf, "PUT", "sobjects/Account/001000000000000AAA", json={})
    assert wrong_method.status_code == 405
    missing_record = raw(sf, "GET", "sobjects/Account/001000000000000AAA")
    assert missing_record.status_code == 404
    assert missing_record.json()[0]["errorCode"] == "NOT_FOUND"


def test_update_only_upsert_does_not_create(sf: Salesforce) -> None:
    resp = raw(sf, "PATCH", "sobjects/Account/ERP_Customer_Id__c/NEVER", params={"updateOnly": "true"},
               json={"Name": "x"})
    assert resp.status_code == 404
    assert sf.query("SELECT COUNT() FROM Account WHERE ERP_Customer_Id__c = 'NEVER'")["totalSize"] == 0


def test_post_with_http_method_override(sf: Salesforce) -> None:
    account_id = sf.Account.create({"Name": "Override"})["id"]
    resp = raw(sf, "POST", f"sobjects/Account/{account_id}", params={"_HttpMethod": "PATCH"}, json={"Name": "Over"})
    assert resp.status_code == 204
    assert sf.Account.get(account_id)["Name"] == "Over"


def test_describe_and_describe_global(sf: Salesforce) -> None:
    describe = sf.Account.describe()
    fields = {f["name"]: f for f in describe["fields"]}
    assert describe["keyPrefix"] == "001"
    assert fields["ERP_Customer_Id__c"]["externalId"] is True
    assert fields["ERP_Customer_Id__c"]["unique"] is True
    assert fields["Name"]["nillable"] is False
    assert fields["ParentId"]["referenceTo"] == ["Account"]
    assert {c["childSObject"] for c in describe["childRelationships"]} >= {"Contact", "Contract", "Order"}
    names = {o["name"]: o["keyPrefix"] for o in sf.describe()["sobjects"]}
    assert names == {**names, "Account": "001", "Contact": "003", "Product2": "01t", "Pricebook2": "01s",
                     "PricebookEntry": "01u", "Contract": "800", "Order": "801", "OrderItem": "802", "User": "005"}
    assert {"Shipment__c", "Shipment_Status__e", "Contract_Signed__e"} <= set(names)


def test_auto_numbers_defaults_and_the_standard_price_book(sf: Salesforce) -> None:
    account_id = sf.Account.create({"Name": "Numbers"})["id"]
    first = sf.Contract.get(sf.Contract.create({"AccountId": account_id})["id"])
    second = sf.Contract.get(sf.Contract.create({"AccountId": account_id})["id"])
    assert first["Status"] == "Draft"
    assert int(second["ContractNumber"]) == int(first["ContractNumber"]) + 1
    standard = sf.query("SELECT Id, Name FROM Pricebook2 WHERE IsStandard = true")
    assert standard["totalSize"] == 1


def test_restricted_picklist(sf: Salesforce) -> None:
    account_id = sf.Account.create({"Name": "Picklist"})["id"]
    with pytest.raises(SalesforceMalformedRequest) as failed:
        sf.Contract.create({"AccountId": account_id, "Status": "Signed-ish"})
    assert errors_of(failed)[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_query_pages_follow_next_records_url(sf: Salesforce) -> None:
    for n in range(450):
        sf.Product2.create({"Name": f"Paged {n:03d}", "Family": "Hardware", "ProductCode": f"PAGE-{n:03d}"})
    first = sf.query("SELECT Id, Name FROM Product2 WHERE ProductCode LIKE 'PAGE-%' ORDER BY Name",
                     headers={"Sforce-Query-Options": "batchSize=200"})
    assert first["totalSize"] == 450
    assert first["done"] is False
    assert len(first["records"]) == 200
    assert first["nextRecordsUrl"].startswith("/services/data/v62.0/query/01g")
    names = [r["Name"] for r in sf.query_all_iter(
        "SELECT Name FROM Product2 WHERE ProductCode LIKE 'PAGE-%' ORDER BY Name")]
    assert names == [f"Paged {n:03d}" for n in range(450)]
    every = sf.query_all("SELECT Id FROM Product2 WHERE ProductCode LIKE 'PAGE-%'")
    assert every["totalSize"] == 450
    assert len(every["records"]) == 450


def test_query_all_includes_deleted_rows(sf: Salesforce) -> None:
    account_id = sf.Account.create({"Name": "Deleted Later", "ERP_Customer_Id__c": "DEL-1"})["id"]
    sf.Account.delete(account_id)
    query = format_soql("SELECT Id, IsDeleted FROM Account WHERE Id = {}", account_id)
    assert sf.query(query)["totalSize"] == 0
    rows = sf.query_all(query, include_deleted=True)["records"]
    assert rows[0]["IsDeleted"] is True
    # a deleted record's external id is free again
    assert sf.Account.create({"Name": "Reuse", "ERP_Customer_Id__c": "DEL-1"})["success"] is True


def test_query_errors(sf: Salesforce) -> None:
    for soql, code in [("SELEC Id FROM Account", "MALFORMED_QUERY"), ("SELECT Nope FROM Account", "INVALID_FIELD"),
                       ("SELECT Id FROM Nope", "INVALID_TYPE"),
                       ("SELECT Tracking_Number__c FROM Shipment_Status__e", "INVALID_TYPE")]:
        with pytest.raises(SalesforceMalformedRequest) as failed:
            sf.query(soql)
        assert errors_of(failed)[0]["errorCode"] == code
    bad_locator = raw(sf, "GET", "query/01g000000000000-2000")
    assert bad_locator.status_code == 400


def test_parent_fields_in_query(sf: Salesforce) -> None:
    account_id = sf.Account.create({"Name": "Parent Co", "ERP_Customer_Id__c": "PQ-1"})["id"]
    sf.Contact.create({"LastName": "Kid", "AccountId": account_id})
    sf.Contact.create({"LastName": "Loner"})
    rows = sf.query("SELECT LastName, Account.Name FROM Contact WHERE LastName IN ('Kid', 'Loner') "
                    "ORDER BY LastName")["records"]
    assert rows[0]["Account"]["Name"] == "Parent Co"
    assert rows[1]["Account"] is None


def test_updated_and_deleted_resources(sf: Salesforce) -> None:
    import datetime as dt

    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    account_id = sf.Account.create({"Name": "Replicated"})["id"]
    sf.Account.delete(account_id)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    deleted = sf.Account.deleted(start, end)
    assert account_id in [d["id"] for d in deleted["deletedRecords"]]


def test_versions_resources_and_limits(sf: Salesforce, emu: Emulator) -> None:
    versions = sf.session.get(f"{emu.info['instance_url']}/services/data/", timeout=10)
    assert versions.status_code == 200
    assert "Sforce-Limit-Info" not in versions.headers
    assert {"version": "59.0", "label": "Winter '24", "url": "/services/data/v59.0"} in versions.json()
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 15000
    assert limits["DailyApiRequests"]["Remaining"] < 15000
