"""Bulk API 2.0 ingest and query jobs, driven by simple-salesforce's bulk2 client over HTTPS.

simple-salesforce sleeps ``wait`` seconds before and between polls (5 s by default), so every call here
passes a small ``wait``. Error cases go through the raw session to see status codes and bodies as sent.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceOperationError

from salesforce_emulator import Emulator
from salesforce_emulator.connection import fetch_token, https_session

WAIT = 0.05


def tag() -> str:
    return f"bulk-{uuid.uuid4().hex[:10]}"


def call(sf: Salesforce, method: str, path: str, *, csv_body: str | bytes | None = None,
         **kwargs) -> requests.Response:
    """A Bulk API 2.0 request outside simple-salesforce's helpers, to see status codes as sent."""
    headers = dict(sf.headers)
    if csv_body is not None:
        headers["Content-Type"] = "text/csv; charset=UTF-8"
        kwargs["data"] = csv_body.encode() if isinstance(csv_body, str) else csv_body
    return sf.session.request(method, f"{sf.bulk2_url}{path}", headers=headers, timeout=30, **kwargs)


def error_of(resp: requests.Response) -> dict:
    body = resp.json()
    assert isinstance(body, list), body
    return body[0]


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def wait_for(sf: Salesforce, kind: str, job_id: str, states: tuple[str, ...], timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = call(sf, "GET", f"{kind}/{job_id}").json()
        if info["state"] in states or time.monotonic() > deadline:
            return info
        time.sleep(0.02)


def open_job(sf: Salesforce, **spec) -> dict:
    resp = call(sf, "POST", "ingest", json={"object": "Account", "operation": "insert", **spec})
    assert resp.status_code == 200, resp.text
    return resp.json()


def names_in_org(sf: Salesforce, prefix: str, *, include_deleted: bool = False) -> set[str]:
    soql = format_soql("SELECT Name FROM Account WHERE Name LIKE '{:like}%'", prefix)
    result = sf.query_all(soql, include_deleted=include_deleted)
    return {r["Name"] for r in result["records"]}


@pytest.fixture
def batch_delay(emu: Emulator) -> Iterator[None]:
    """Slow each internal batch down so a job can be caught InProgress."""
    assert emu.app is not None
    emu.app.settings.bulk_batch_delay_seconds = 0.6
    yield
    emu.app.settings.bulk_batch_delay_seconds = 0.0


# -- ingest through simple-salesforce ------------------------------------------------------------------

def test_insert_commits_rows_and_reports_successful_results(sf: Salesforce) -> None:
    t = tag()
    records = [{"Name": f"{t}-{i}", "NumberOfEmployees": str(i), "Industry": "Retail"} for i in range(3)]
    [result] = sf.bulk2.Account.insert(records=records, wait=WAIT)
    assert result["numberRecordsProcessed"] == 3
    assert result["numberRecordsFailed"] == 0
    assert result["job_id"].startswith("750")

    successful = rows_of(sf.bulk2.Account.get_successful_records(result["job_id"]))
    assert sorted(r["Name"] for r in successful) == [f"{t}-0", f"{t}-1", f"{t}-2"]
    assert {r["sf__Created"] for r in successful} == {"true"}
    one = next(r for r in successful if r["Name"] == f"{t}-1")
    account = sf.Account.get(one["sf__Id"])
    assert account["NumberOfEmployees"] == 1
    assert account["Industry"] == "Retail"
    assert rows_of(sf.bulk2.Account.get_failed_records(result["job_id"])) == []


def test_insert_from_a_pipe_delimited_crlf_file(sf: Salesforce, tmp_path: Path) -> None:
    t = tag()
    path = tmp_path / "accounts.csv"
    path.write_text(f"Name|BillingCity\r\n{t}-a|Lyon\r\n\"{t}-b|quoted\"|Nice\r\n", encoding="utf-8")
    [result] = sf.bulk2.Account.insert(csv_file=str(path), column_delimiter="PIPE", line_ending="CRLF", wait=WAIT)
    assert result["numberRecordsProcessed"] == 2
    assert result["numberRecordsFailed"] == 0
    soql = format_soql("SELECT Name, BillingCity FROM Account WHERE Name LIKE '{:like}%' ORDER BY Name", t)
    found = sf.query(soql)["records"]
    assert [(r["Name"], r["BillingCity"]) for r in found] == [(f"{t}-a", "Lyon"), (f"{t}-b|quoted", "Nice")]
    # results come back in the job's delimiter and line ending
    text = sf.bulk2.Account.get_successful_records(result["job_id"])
    assert text.startswith('"sf__Id"|"sf__Created"|"Name"|"BillingCity"\r\n')


def test_failing_rows_are_reported_and_their_siblings_commit(sf: Salesforce) -> None:
    t = tag()
    records = [
        {"Name": f"{t}-good", "NumberOfEmployees": "7", "ERP_Customer_Id__c": ""},
        {"Name": f"{t}-bad-number", "NumberOfEmployees": "seven", "ERP_Customer_Id__c": ""},
        {"Name": "", "NumberOfEmployees": "1", "ERP_Customer_Id__c": ""},
        {"Name": f"{t}-dup-1", "NumberOfEmployees": "", "ERP_Customer_Id__c": f"{t}-ERP"},
        {"Name": f"{t}-dup-2", "NumberOfEmployees": "", "ERP_Customer_Id__c": f"{t}-ERP"},
    ]
    [result] = sf.bulk2.Account.insert(records=records, wait=WAIT)
    assert result["numberRecordsProcessed"] == 5
    assert result["numberRecordsFailed"] == 3

    failed = {r["Name"]: r for r in rows_of(sf.bulk2.Account.get_failed_records(result["job_id"]))}
    assert failed[f"{t}-bad-number"]["sf__Error"].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD:")
    assert failed[f"{t}-bad-number"]["sf__Error"].endswith(" --")
    assert failed[f"{t}-bad-number"]["NumberOfEmployees"] == "seven"  # original columns echoed
    assert failed[""]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]")
    assert failed[f"{t}-dup-2"]["sf__Error"].startswith("DUPLICATE_VALUE:")
    assert {r["sf__Id"] for r in failed.values()} == {""}  # failed inserts have no id
    assert names_in_org(sf, t) == {f"{t}-good", f"{t}-dup-1"}


def test_upsert_by_external_id_creates_then_updates(sf: Salesforce) -> None:
    t = tag()
    existing = sf.Account.create({"Name": f"{t}-old", "ERP_Customer_Id__c": f"{t}-1"})["id"]
    records = [{"ERP_Customer_Id__c": f"{t}-1", "Name": f"{t}-renamed"},
               {"ERP_Customer_Id__c": f"{t}-2", "Name": f"{t}-new"}]
    [result] = sf.bulk2.Account.upsert(records=records, external_id_field="ERP_Customer_Id__c", wait=WAIT)
    assert result["numberRecordsFailed"] == 0

    successful = {r["ERP_Customer_Id__c"]: r for r in
                  rows_of(sf.bulk2.Account.get_successful_records(result["job_id"]))}
    assert successful[f"{t}-1"]["sf__Id"] == existing
    assert successful[f"{t}-1"]["sf__Created"] == "false"
    assert successful[f"{t}-2"]["sf__Created"] == "true"
    assert sf.Account.get(existing)["Name"] == f"{t}-renamed"
    assert sf.Account.get(successful[f"{t}-2"]["sf__Id"])["ERP_Customer_Id__c"] == f"{t}-2"


def test_update_leaves_empty_cells_and_nulls_na_cells(sf: Salesforce) -> None:
    t = tag()
    first = sf.Account.create({"Name": f"{t}-1", "BillingCity": "Paris", "Phone": "123"})["id"]
    second = sf.Account.create({"Name": f"{t}-2", "BillingCity": "Rome", "Phone": "456"})["id"]
    records = [{"Id": first, "BillingCity": "Oslo", "Phone": ""},
               {"Id": second, "BillingCity": "#N/A", "Phone": "789"},
               {"Id": "001000000000000AAA", "BillingCity": "Nowhere", "Phone": ""}]
    [result] = sf.bulk2.Account.update(records=records, wait=WAIT)
    assert result["numberRecordsProcessed"] == 3
    assert result["numberRecordsFailed"] == 1
    assert (sf.Account.get(first)["BillingCity"], sf.Account.get(first)["Phone"]) == ("Oslo", "123")
    assert (sf.Account.get(second)["BillingCity"], sf.Account.get(second)["Phone"]) == (None, "789")
    [failure] = rows_of(sf.bulk2.Account.get_failed_records(result["job_id"]))
    assert failure["sf__Id"] == "001000000000000AAA"
    assert failure["sf__Error"].startswith("NOT_FOUND:")


def test_delete_moves_rows_to_the_recycle_bin_and_hard_delete_removes_them(sf: Salesforce) -> None:
    t = tag()
    soft = sf.Account.create({"Name": f"{t}-soft"})["id"]
    hard = sf.Account.create({"Name": f"{t}-hard"})["id"]
    [deleted] = sf.bulk2.Account.delete(records=[{"Id": soft}], wait=WAIT)
    [hard_deleted] = sf.bulk2.Account.hard_delete(records=[{"Id": hard}], wait=WAIT)
    assert deleted["numberRecordsFailed"] == hard_deleted["numberRecordsFailed"] == 0
    assert names_in_org(sf, t) == set()
    assert names_in_org(sf, t, include_deleted=True) == {f"{t}-soft"}

    soql = format_soql("SELECT Id, Name, IsDeleted FROM Account WHERE Name LIKE '{:like}%'", t)
    pages = list(sf.bulk2.Account.query_all(soql, wait=WAIT))
    assert rows_of(pages[0]) == [{"Id": soft, "Name": f"{t}-soft", "IsDeleted": "true"}]
    plain = list(sf.bulk2.Account.query(format_soql("SELECT Id FROM Account WHERE Name LIKE '{:like}%'", t), wait=WAIT))
    assert rows_of(plain[0]) == []


def test_insert_job_on_a_platform_event_publishes_each_row(emu: Emulator, sf: Salesforce) -> None:
    assert emu.app is not None
    channel = "/event/Shipment_Status__e"
    before = emu.app.events.latest_replay_id(channel)  # type: ignore[attr-defined]
    t = tag()
    records = [{"Tracking_Number__c": f"{t}-{i}", "Status__c": "In Transit"} for i in range(3)]
    records.append({"Tracking_Number__c": f"{t}-x", "Status__c": ""})  # Status__c is required
    [result] = sf.bulk2.Shipment_Status__e.insert(records=records, wait=WAIT)
    assert result["numberRecordsProcessed"] == 4
    assert result["numberRecordsFailed"] == 1
    events = emu.app.events.since(channel, before)  # type: ignore[attr-defined]
    assert sorted(e["data"]["payload"]["Tracking_Number__c"] for e in events) == [f"{t}-0", f"{t}-1", f"{t}-2"]
    successful = rows_of(sf.bulk2.Shipment_Status__e.get_successful_records(result["job_id"]))
    assert all(r["sf__Id"].startswith("e00") for r in successful)


def test_ten_thousand_row_insert_completes_and_is_queryable(sf: Salesforce) -> None:
    t = tag()
    records = [{"Name": f"{t}-{i:05d}", "NumberOfEmployees": str(i)} for i in range(10_000)]
    started = time.monotonic()
    [result] = sf.bulk2.Account.insert(records=records, wait=WAIT)
    elapsed = time.monotonic() - started
    assert result["numberRecordsProcessed"] == 10_000
    assert result["numberRecordsFailed"] == 0
    assert elapsed < 10, f"10,000-row insert took {elapsed:.1f} s"
    assert sf.query(format_soql("SELECT COUNT() FROM Account WHERE Name LIKE '{:like}%'", t))["totalSize"] == 10_000

    soql = format_soql("SELECT Name, NumberOfEmployees FROM Account WHERE Name LIKE '{:like}%'", t)
    pages = list(sf.bulk2.Account.query(soql, max_records=4000, wait=WAIT))
    assert [len(rows_of(p)) for p in pages] == [4000, 4000, 2000]
    rows = [r for p in pages for r in rows_of(p)]
    assert {r["Name"] for r in rows} == {r["Name"] for r in records}
    assert sum(int(r["NumberOfEmployees"]) for r in rows) == sum(range(10_000))


# -- query through simple-salesforce -----------------------------------------------------------------

def test_query_pages_and_formats_values_as_csv(sf: Salesforce) -> None:
    t = tag()
    for i in range(5):
        sf.Account.create({"Name": f"{t}-{i}", "NumberOfEmployees": 40 + i, "AnnualRevenue": 1500000.5})
    soql = format_soql("SELECT Id, Name, NumberOfEmployees, AnnualRevenue, Industry, IsDeleted, CreatedBy.Username "
                       "FROM Account WHERE Name LIKE '{:like}%' ORDER BY Name", t)
    pages = list(sf.bulk2.Account.query(soql, max_records=2, wait=WAIT))
    assert len(pages) == 3
    for page in pages:  # every page repeats the header row in SELECT order
        assert page.splitlines()[0] == ('"Id","Name","NumberOfEmployees","AnnualRevenue","Industry","IsDeleted",'
                                        '"CreatedBy.Username"')
    rows = [r for p in pages for r in rows_of(p)]
    assert [r["Name"] for r in rows] == [f"{t}-{i}" for i in range(5)]
    assert rows[0]["NumberOfEmployees"] == "40"
    assert rows[0]["AnnualRevenue"] == "1500000.5"
    assert rows[0]["Industry"] == ""
    assert rows[0]["IsDeleted"] == "false"
    assert rows[0]["CreatedBy.Username"] == "integration@example.com"


def test_query_results_headers_and_locator(sf: Salesforce) -> None:
    t = tag()
    for i in range(3):
        sf.Account.create({"Name": f"{t}-{i}"})
    soql = format_soql("SELECT Name FROM Account WHERE Name LIKE '{:like}%'", t)
    job = call(sf, "POST", "query", json={"operation": "query", "query": soql})
    assert job.status_code == 200
    info = job.json()
    assert (info["state"], info["jobType"], info["object"], info["operation"]) == (
        "UploadComplete", "V2Query", "Account", "query")
    done = wait_for(sf, "query", info["id"], ("JobComplete",))
    assert done["numberRecordsProcessed"] == 3

    first = call(sf, "GET", f"query/{info['id']}/results", params={"maxRecords": 2})
    assert first.status_code == 200
    assert first.headers["Content-Type"].startswith("text/csv")
    assert first.headers["Sforce-NumberOfRecords"] == "2"
    locator = first.headers["Sforce-Locator"]
    assert locator not in ("", "null")
    last = call(sf, "GET", f"query/{info['id']}/results", params={"maxRecords": 2, "locator": locator})
    assert last.headers["Sforce-NumberOfRecords"] == "1"
    assert last.headers["Sforce-Locator"] == "null"
    everything = call(sf, "GET", f"query/{info['id']}/results")  # no maxRecords: one default-sized page
    assert everything.headers["Sforce-NumberOfRecords"] == "3"
    assert everything.headers["Sforce-Locator"] == "null"

    for bad in ("bm90LWEtbG9jYXRvcg", "!!!", "OTk5"):  # not a number, not base64, past the end
        resp = call(sf, "GET", f"query/{info['id']}/results", params={"locator": bad})
        assert resp.status_code == 400
        assert error_of(resp)["errorCode"] == "INVALID_QUERY_LOCATOR"
    resp = call(sf, "GET", f"query/{info['id']}/results", params={"maxRecords": "lots"})
    assert resp.status_code == 400
    other_version = sf.bulk2_url.replace(f"/v{sf.sf_version}/", "/v61.0/")
    resp = sf.session.get(f"{other_version}query/{info['id']}/results", headers=sf.headers, timeout=10)
    assert resp.status_code == 409  # results must be read with the API version that created the job

    listed = call(sf, "GET", "query").json()
    assert listed["done"] is True
    assert listed["nextRecordsUrl"] is None
    assert info["id"] in {j["id"] for j in listed["records"]}
    assert call(sf, "DELETE", f"query/{info['id']}").status_code == 204
    assert call(sf, "GET", f"query/{info['id']}").status_code == 404


@pytest.mark.parametrize(("soql", "code"), [
    ("SELECT COUNT() FROM Account", "FUNCTIONALITY_NOT_ENABLED"),
    ("SELECT Id FROM Account LIMIT 5 OFFSET 2", "FUNCTIONALITY_NOT_ENABLED"),
    ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "FUNCTIONALITY_NOT_ENABLED"),
    ("SELECT Id FRM Account", "MALFORMED_QUERY"),
    ("SELECT Bogus__c FROM Account", "INVALID_FIELD"),
    ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
])
def test_query_jobs_reject_what_bulk_queries_cannot_run(sf: Salesforce, soql: str, code: str) -> None:
    resp = call(sf, "POST", "query", json={"operation": "query", "query": soql})
    assert resp.status_code == 400
    assert error_of(resp)["errorCode"] == code


def test_query_results_before_completion_are_refused(sf: Salesforce, batch_delay: None) -> None:
    job = call(sf, "POST", "query", json={"operation": "queryAll", "query": "SELECT Id FROM Account"}).json()
    resp = call(sf, "GET", f"query/{job['id']}/results")
    assert resp.status_code == 400
    assert error_of(resp)["errorCode"] == "INVALIDJOBSTATE"
    assert call(sf, "DELETE", f"query/{job['id']}").status_code == 400  # not finished yet
    aborted = call(sf, "PATCH", f"query/{job['id']}", json={"state": "Aborted"})
    assert aborted.status_code == 200
    assert aborted.json()["state"] == "Aborted"
    time.sleep(0.7)  # the worker wakes after its delay and must not complete an aborted job
    assert call(sf, "GET", f"query/{job['id']}").json()["state"] == "Aborted"
    assert call(sf, "GET", f"query/{job['id']}/results").status_code == 400


# -- the ingest job lifecycle over the raw API ------------------------------------------------------------

def test_job_info_shape_through_the_lifecycle(sf: Salesforce) -> None:
    t = tag()
    info = open_job(sf)
    assert info["state"] == "Open"
    assert info["jobType"] == "V2Ingest"
    assert info["contentUrl"] == f"services/data/v{sf.sf_version}/jobs/ingest/{info['id']}/batches"
    assert (info["lineEnding"], info["columnDelimiter"], info["contentType"]) == ("LF", "COMMA", "CSV")
    assert info["concurrencyMode"] == "Parallel"
    assert info["apiVersion"] == float(sf.sf_version)
    assert info["createdById"].startswith("005")

    # two uploads append to the same job
    assert call(sf, "PUT", f"ingest/{info['id']}/batches", csv_body=f"Name\n{t}-1\n").status_code == 201
    upload = call(sf, "PUT", f"ingest/{info['id']}/batches", csv_body=f"Name\n{t}-2\n{t}-3\n")
    assert upload.status_code == 201
    assert upload.content == b""
    closed = call(sf, "PATCH", f"ingest/{info['id']}", json={"state": "UploadComplete"})
    assert closed.status_code == 200
    assert closed.json()["state"] == "UploadComplete"
    done = wait_for(sf, "ingest", info["id"], ("JobComplete", "Failed"))
    assert done["state"] == "JobComplete"
    assert done["numberRecordsProcessed"] == 3
    assert done["numberRecordsFailed"] == 0
    for key in ("retries", "totalProcessingTime", "apiActiveProcessingTime", "apexProcessingTime"):
        assert isinstance(done[key], int)
    assert "errorMessage" not in done
    assert names_in_org(sf, t) == {f"{t}-1", f"{t}-2", f"{t}-3"}
    assert info["id"] in {j["id"] for j in call(sf, "GET", "ingest").json()["records"]}

    assert call(sf, "PUT", f"ingest/{info['id']}/batches", csv_body=f"Name\n{t}-late\n").status_code == 400
    again = call(sf, "PATCH", f"ingest/{info['id']}", json={"state": "UploadComplete"})
    assert again.status_code == 400
    assert error_of(again)["errorCode"] == "INVALIDJOBSTATE"
    assert call(sf, "DELETE", f"ingest/{info['id']}").status_code == 204
    assert call(sf, "GET", f"ingest/{info['id']}").status_code == 404


@pytest.mark.parametrize(("body", "code"), [
    ("{not json", "JSON_PARSER_ERROR"),
    ('["a", "list"]', "INVALIDJOB"),
    ('{"object": "Account", "operation": 5}', "INVALIDJOB"),
    ('{"object": "Account", "operation": "merge"}', "INVALIDJOB"),
    ('{"object": "Nope__c", "operation": "insert"}', "INVALIDJOB"),
    ('{"object": ["Account"], "operation": "insert"}', "INVALIDJOB"),
    ('{"object": "Account", "operation": "upsert"}', "INVALIDJOB"),
    ('{"object": "Account", "operation": "upsert", "externalIdFieldName": "Name"}', "INVALIDJOB"),
    ('{"object": "Account", "operation": "insert", "lineEnding": "CR"}', "INVALIDJOB"),
    ('{"object": "Account", "operation": "insert", "columnDelimiter": "COLON"}', "INVALIDJOB"),
    ('{"object": "Account", "operation": "insert", "contentType": "JSON"}', "INVALIDJOB"),
    ('{"object": "Shipment_Status__e", "operation": "update"}', "INVALIDJOB"),
    ('{"object": "Account", "operation": "insert", "externalIdField": "X"}', "JSON_PARSER_ERROR"),
])
def test_bad_job_specs_are_refused(sf: Salesforce, body: str, code: str) -> None:
    resp = call(sf, "POST", "ingest", data=body)
    assert resp.status_code == 400
    assert error_of(resp)["errorCode"] == code
    assert error_of(resp)["message"]


def test_bad_uploads_are_refused(sf: Salesforce) -> None:
    info = open_job(sf)
    path = f"ingest/{info['id']}/batches"
    assert call(sf, "PUT", path, csv_body="Name\nfirst\n").status_code == 201
    for body in ("Name,Phone\nx,1\n", b"Name\n\xff\xfe\n", "", "\n"):
        resp = call(sf, "PUT", path, csv_body=body)
        assert resp.status_code == 400, body
        assert error_of(resp)["errorCode"] == "INVALIDBATCH"
    assert call(sf, "PUT", "ingest/750000000000000AAA/batches", csv_body="Name\nx\n").status_code == 404
    assert call(sf, "PATCH", f"ingest/{info['id']}", json={"state": "JobComplete"}).status_code == 400
    assert call(sf, "PATCH", f"ingest/{info['id']}", json=["UploadComplete"]).status_code == 400
    assert call(sf, "PATCH", f"ingest/{info['id']}", json={"state": "Aborted"}).status_code == 200


def test_an_upload_over_100_mb_is_refused(sf: Salesforce) -> None:
    info = open_job(sf)
    body = b"Name\n" + b"x" * (100 * 1024 * 1024 - 4)
    resp = call(sf, "PUT", f"ingest/{info['id']}/batches", csv_body=body)
    assert resp.status_code == 400
    assert error_of(resp)["errorCode"] == "INVALIDBATCH"
    assert "100 MB" in error_of(resp)["message"]
    assert call(sf, "GET", f"ingest/{info['id']}").json()["state"] == "Open"


@pytest.mark.parametrize(("spec", "data", "message"), [
    ({}, "Name,Bogus__c\nx,1\n", "InvalidBatch : Field name not found : Bogus__c"),
    ({}, "Name,Parent.Name\nx,y\n", "InvalidBatch : Field name not found : Parent.Name"),
    ({}, "Name,name\nx,y\n", "InvalidBatch : Duplicate field name: name"),
    ({}, "Name\r\nx\r\n", "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF"),
    ({"lineEnding": "CRLF"}, "Name\nx\n", "Current LineEnding setting is CRLF"),
    ({}, "Name,Phone\nx,1\ny,2,3\n", "Row 2 has 3 values"),
])
def test_bad_data_fails_the_job_without_writing(sf: Salesforce, spec: dict, data: str, message: str) -> None:
    info = open_job(sf, **spec)
    assert call(sf, "PUT", f"ingest/{info['id']}/batches", csv_body=data).status_code == 201
    call(sf, "PATCH", f"ingest/{info['id']}", json={"state": "UploadComplete"})
    done = wait_for(sf, "ingest", info["id"], ("JobComplete", "Failed"))
    assert done["state"] == "Failed"
    assert message in done["errorMessage"]
    assert done["numberRecordsProcessed"] == 0
    unprocessed = call(sf, "GET", f"ingest/{info['id']}/unprocessedrecords").text
    assert len(unprocessed.splitlines()) == len(data.splitlines())  # header plus every row


def test_simple_salesforce_raises_the_job_failure(sf: Salesforce) -> None:
    with pytest.raises(SalesforceOperationError, match="Field name not found : Nope__c"):
        sf.bulk2.Account.insert(records=[{"Name": "x", "Nope__c": "y"}], wait=WAIT)


def test_abort_before_close_leaves_every_row_unprocessed(sf: Salesforce) -> None:
    t = tag()
    info = open_job(sf)
    call(sf, "PUT", f"ingest/{info['id']}/batches", csv_body=f"Name\n{t}-1\n{t}-2\n")
    assert call(sf, "PATCH", f"ingest/{info['id']}", json={"state": "Aborted"}).json()["state"] == "Aborted"
    for spelling in ("unprocessedrecords", "unprocessedRecords"):
        rows = rows_of(call(sf, "GET", f"ingest/{info['id']}/{spelling}").text)
        assert rows == [{"Name": f"{t}-1"}, {"Name": f"{t}-2"}]
    assert rows_of(sf.bulk2.Account.get_successful_records(info["id"])) == []
    assert names_in_org(sf, t) == set()


def test_abort_while_in_progress_stops_before_the_next_batch(sf: Salesforce, batch_delay: None) -> None:
    t = tag()
    info = open_job(sf)
    call(sf, "PUT", f"ingest/{info['id']}/batches", csv_body=f"Name\n{t}-1\n")
    call(sf, "PATCH", f"ingest/{info['id']}", json={"state": "UploadComplete"})
    assert wait_for(sf, "ingest", info["id"], ("InProgress",))["state"] == "InProgress"
    assert call(sf, "DELETE", f"ingest/{info['id']}").status_code == 400  # still running
    assert call(sf, "PATCH", f"ingest/{info['id']}", json={"state": "Aborted"}).status_code == 200
    time.sleep(0.7)
    assert call(sf, "GET", f"ingest/{info['id']}").json()["state"] == "Aborted"
    assert rows_of(sf.bulk2.Account.get_unprocessed_records(info["id"])) == [{"Name": f"{t}-1"}]
    assert names_in_org(sf, t) == set()


# -- allocation, sessions and restarts -----------------------------------------------------------------

def test_every_bulk_call_counts_as_an_api_call(emu: Emulator, sf: Salesforce) -> None:
    emu.clear_requests()
    used_before, _ = emu.api_usage()
    sf.bulk2.Account.insert(records=[{"Name": tag()}], wait=WAIT)
    calls = [r for r in emu.requests() if "/jobs/" in r["path"]]
    methods = [r["method"] for r in calls]
    assert methods[:3] == ["POST", "PUT", "PATCH"]
    assert methods.count("GET") >= 2  # at least one poll and the final job info
    assert emu.api_usage()[0] - used_before == len(calls)


def test_an_expired_session_is_refused_while_the_job_keeps_running(
        emu: Emulator, sf: Salesforce, session: requests.Session, batch_delay: None) -> None:
    t = tag()
    info = open_job(sf)
    call(sf, "PUT", f"ingest/{info['id']}/batches", csv_body=f"Name\n{t}-1\n")
    call(sf, "PATCH", f"ingest/{info['id']}", json={"state": "UploadComplete"})
    emu.expire_tokens()
    refused = call(sf, "GET", f"ingest/{info['id']}")
    assert refused.status_code == 401
    assert error_of(refused)["errorCode"] == "INVALID_SESSION_ID"

    fresh = Salesforce(instance_url=emu.info["instance_url"], session_id=fetch_token(emu.info, session),
                       session=session, version=emu.info["api_version"])
    assert wait_for(fresh, "ingest", info["id"], ("JobComplete",))["state"] == "JobComplete"
    assert names_in_org(fresh, t) == {f"{t}-1"}


def test_a_restarted_emulator_finishes_its_queued_jobs(tmp_path: Path) -> None:
    t = tag()
    first = Emulator(state_dir=tmp_path, bulk_batch_delay_seconds=30).start()
    try:
        session = https_session(first.info)
        sf = Salesforce(instance_url=first.info["instance_url"], session_id=fetch_token(first.info, session),
                        session=session, version=first.info["api_version"])
        info = open_job(sf)
        call(sf, "PUT", f"ingest/{info['id']}/batches", csv_body=f"Name\n{t}-1\n{t}-2\n")
        call(sf, "PATCH", f"ingest/{info['id']}", json={"state": "UploadComplete"})
        assert wait_for(sf, "ingest", info["id"], ("InProgress",))["state"] == "InProgress"
    finally:
        first.stop()  # interrupts the simulated delay; nothing was written yet

    with Emulator(state_dir=tmp_path) as second:
        session = https_session(second.info)
        sf = Salesforce(instance_url=second.info["instance_url"], session_id=fetch_token(second.info, session),
                        session=session, version=second.info["api_version"])
        done = wait_for(sf, "ingest", info["id"], ("JobComplete", "Failed"))
        assert (done["state"], done["numberRecordsProcessed"]) == ("JobComplete", 2)
        assert names_in_org(sf, t) == {f"{t}-1", f"{t}-2"}
        assert len(rows_of(sf.bulk2.Account.get_successful_records(info["id"]))) == 2
