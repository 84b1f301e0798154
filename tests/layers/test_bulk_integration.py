"""Bulk API 2.0 ingest and query against the emulator: streaming, parts, results, expiry mid-job."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from salesforce_access import BudgetExhausted, BulkJob, PollPolicy, RetryPolicy, Timeouts, soql

from .conftest import LambdaContext, ManualClock, api_calls, token_posts


def tag() -> str:
    return uuid.uuid4().hex[:10]


def account_rows(run: str, count: int, produced: list[int] | None = None) -> Iterator[dict[str, object]]:
    """A generator, as a sync would stream rows from the ERP; `produced` counts what was pulled."""
    for i in range(count):
        if produced is not None:
            produced.append(i)
        yield {"Name": f"{run}-{i:05d}", "ERP_Customer_Id__c": f"{run}-{i:05d}", "NumberOfEmployees": i}


def test_ingest_streams_rows_into_size_limited_jobs(make_access, emu, independent_client) -> None:
    access = make_access("client_credentials")
    run = tag()
    jobs = access.bulk.ingest("Account", "upsert", account_rows(run, 3000), external_id_field="ERP_Customer_Id__c",
                              max_part_bytes=64 * 1024)
    assert len(jobs) > 1  # one job per part
    assert all(isinstance(job, BulkJob) and job.state == "JobComplete" for job in jobs)
    assert sum(job.number_records_processed for job in jobs) == 3000
    assert sum(job.number_records_failed for job in jobs) == 0
    uploads = [r for r in api_calls(emu, "/batches") if r["method"] == "PUT"]
    assert len(uploads) == len(jobs)
    ids = [row["sf__Id"] for job in jobs for row in access.bulk.successful_results(job)]
    assert len(set(ids)) == 3000
    stored = independent_client.query_all(soql("SELECT Id FROM Account WHERE ERP_Customer_Id__c LIKE {p}",
                                                p=f"{run}-%"))["records"]
    assert {record["Id"] for record in stored} == set(ids)


def test_failed_rows_are_streamed_with_their_error(make_access, emu) -> None:
    access = make_access("client_credentials")
    run = tag()
    rows = [{"Name": f"{run}-ok", "Industry": "Retail"}, {"Name": "", "Industry": "Retail"},
            {"Name": f"{run}-ok2", "Industry": "Retail"}]
    [job] = access.bulk.ingest("Account", "insert", rows)
    assert job.number_records_failed == 1
    failed = list(access.bulk.failed_results(job))
    assert len(failed) == 1
    assert "REQUIRED_FIELD_MISSING" in failed[0]["sf__Error"]
    assert {row["Name"] for row in access.bulk.successful_results(job)} == {f"{run}-ok", f"{run}-ok2"}


def test_query_streams_page_by_page(make_access, emu) -> None:
    access = make_access("client_credentials")
    run = tag()
    access.bulk.ingest("Account", "insert", ({"Name": f"{run}-{i:05d}"} for i in range(2500)))
    emu.clear_requests()
    rows = access.bulk.query(soql("SELECT Id, Name FROM Account WHERE Name LIKE {p}", p=f"{run}-%"), page_size=1000)
    first = next(rows)
    assert first["Name"].startswith(run)
    assert len(api_calls(emu, "/results")) == 1  # later pages are not fetched yet
    names = [first["Name"]] + [row["Name"] for row in rows]
    assert sorted(names) == [f"{run}-{i:05d}" for i in range(2500)]
    assert len(api_calls(emu, "/results")) == 3  # 1000 + 1000 + 500, via Sforce-Locator


def test_token_expiry_during_an_ingest_job(make_access, emu) -> None:
    access = make_access("jwt_bearer")
    run = tag()
    [job] = access.bulk.ingest("Account", "insert", account_rows(run, 50), wait=False)
    emu.expire_tokens()  # between close and the first poll
    done = access.bulk.wait(job)
    assert done.number_records_processed == 50
    emu.expire_tokens()  # and again before reading the results
    assert sum(1 for _ in access.bulk.successful_results(done)) == 50
    assert len(token_posts(emu)) == 3  # first token, then one per expiry
    assert [r["status"] for r in api_calls(emu, f"/jobs/ingest/{job.id}") if r["status"] == 401] == [401, 401]


def test_token_expiry_between_bulk_steps_with_simple_salesforce(make_access, emu) -> None:
    # simple-salesforce's Bulk2 handler captures the session id when it is created; the layer's
    # session replaces the Authorization header on every request, so the stale id does not matter.
    access = make_access("client_credentials")
    run = tag()
    bulk2 = access.client.bulk2.Account
    emu.expire_tokens()
    results = bulk2.insert(records=[{"Name": f"{run}-{i}"} for i in range(10)], wait=0)
    assert results[0]["numberRecordsProcessed"] == 10
    assert len(token_posts(emu)) == 2  # the first token, then one re-authentication


def test_query_job_expiry_between_pages(make_access, emu) -> None:
    access = make_access("client_credentials")
    run = tag()
    access.bulk.ingest("Account", "insert", ({"Name": f"{run}-{i:04d}"} for i in range(30)))
    rows = access.bulk.query(soql("SELECT Name FROM Account WHERE Name LIKE {p}", p=f"{run}-%"), page_size=10)
    got = [next(rows)["Name"] for _ in range(10)]
    emu.expire_tokens()
    got += [row["Name"] for row in rows]
    assert sorted(got) == [f"{run}-{i:04d}" for i in range(30)]


def test_transient_faults_during_a_job_are_retried(make_access, emu) -> None:
    access = make_access("client_credentials")
    emu.inject("503", count=1, method="PUT", path=r"/batches")  # the upload is replayed from its file
    emu.inject("UNABLE_TO_LOCK_ROW", count=1, method="GET", path=r"/jobs/ingest/")
    [job] = access.bulk.ingest("Account", "insert", ({"Name": f"{tag()}-{i}"} for i in range(20)))
    assert job.number_records_processed == 20
    assert [r["status"] for r in api_calls(emu, "/batches")] == [503, 201]


def test_polling_stops_at_the_budget_and_can_resume(emulator, make_access, emu) -> None:
    slow = emulator.app.settings.bulk_batch_delay_seconds
    emulator.app.settings.bulk_batch_delay_seconds = 2.0  # the job outlasts the first invocation
    try:
        clock = ManualClock()  # the first invocation's polls wait on a clock the test owns
        access = make_access("client_credentials", poll=PollPolicy(initial=0.1, max_delay=0.2), safety_margin=0.2,
                             sleep=clock.sleep, clock=clock)
        access.bind(LambdaContext(remaining_ms=1500, clock=clock))
        with pytest.raises(BudgetExhausted) as info:
            access.bulk.ingest("Account", "insert", ({"Name": f"{tag()}-{i}"} for i in range(5)))
        job_id = info.value.job_id
        assert job_id
        assert sum(clock.sleeps) <= 1.3  # polling stopped inside the budget
        later = make_access("client_credentials", poll=PollPolicy(initial=0.1, max_delay=0.2))
        later.bind(LambdaContext(remaining_ms=30_000))  # a later invocation resumes the same job by its id
        assert later.bulk.wait(job_id).number_records_processed == 5
    finally:
        emulator.app.settings.bulk_batch_delay_seconds = slow


class FixedDelay(RetryPolicy):
    def delay(self, retry_number, rand=None) -> float:
        return 0.8


def test_a_close_replayed_after_a_lost_response_does_not_abort_the_job(make_access, emu) -> None:
    # The first close is applied but its response arrives after the read timeout; the replay is refused
    # because the job is no longer Open, and the layer carries on instead of aborting a good job.
    access = make_access("client_credentials", timeouts=Timeouts(2.0, 0.3), retry=FixedDelay(max_attempts=3))
    emu.inject("delay", count=1, method="PATCH", path=r"/jobs/ingest/", delay_seconds=0.5)
    [job] = access.bulk.ingest("Account", "insert", ({"Name": f"{tag()}-{i}"} for i in range(5)))
    assert job.state == "JobComplete"
    assert job.number_records_processed == 5
    closes = [r["status"] for r in api_calls(emu, "/jobs/ingest/") if r["method"] == "PATCH"]
    assert sorted(closes) == [200, 400]  # applied once (late), refused once; no abort


def test_a_later_invocation_resumes_a_query_at_a_locator(make_access, emu) -> None:
    """query_page gives the next locator before the rows are read; another access object (a follow-up
    invocation, with its own token) reads the next page from it, and query_results resumes there too."""
    first = make_access("client_credentials")
    run = tag()
    first.bulk.ingest("Account", "insert", ({"Name": f"{run}-{i:04d}"} for i in range(250)))
    job = first.bulk.wait(first.bulk.start_query(soql("SELECT Name FROM Account WHERE Name LIKE {p}", p=f"{run}-%")))
    emu.clear_requests()
    with first.bulk.query_page(job, page_size=100) as page:
        locator = page.next_locator
        assert locator is not None
        names = [next(page.rows)["Name"] for _ in range(5)]  # stopped early: the page is closed, not drained
    assert len(api_calls(emu, "/results")) == 1
    second = make_access("jwt_bearer")
    with second.bulk.query_page(job.id, locator, page_size=100) as page:
        middle = [row["Name"] for row in page.rows]
        last_locator = page.next_locator
    assert len(middle) == 100
    assert last_locator is not None
    with second.bulk.query_page(job.id, last_locator, page_size=100) as page:
        tail = [row["Name"] for row in page.rows]
        assert page.next_locator is None  # the last page
    assert len(tail) == 50
    again = [row["Name"] for row in second.bulk.query_results(job.id, page_size=100, locator=locator)]
    assert again == middle + tail
    with first.bulk.query_page(job, page_size=100) as page:
        head = [row["Name"] for row in page.rows]
    assert head[:5] == names
    assert sorted(head + middle + tail) == [f"{run}-{i:04d}" for i in range(250)]
