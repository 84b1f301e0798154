"""Faults in the middle of a run, then a resumed run: both sides end equal and every record is written once.

"Written once" is checked where the systems record it: an Account written twice would have a
LastModifiedDate after its CreatedDate (Salesforce stamps every write), and the request logs of the
emulator and the ERP show how many write requests succeeded.
"""

from __future__ import annotations

import pytest
from customer_sync import engine
from customer_sync.erp import ErpCustomers
from customer_sync.salesforce import SalesforceAccounts

from .conftest import ShortContext


def _accounts_written_once(admin) -> None:
    rows = admin.query("SELECT Id, CreatedDate, LastModifiedDate FROM Account WHERE ERP_Customer_Id__c != null")
    assert rows
    assert all(r["CreatedDate"] == r["LastModifiedDate"] for r in rows)


def _fail_on_call(monkeypatch, cls, name, call_number, action):
    """Run `action` (which breaks a real system) just before the n-th call of cls.name."""
    original = getattr(cls, name)
    calls = {"n": 0}

    def wrapper(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call_number:
            action()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, wrapper)
    return calls


def _ok_writes(log, method, fragment):
    return [r for r in log if r["method"] == method and fragment in r["path"] and (r["status"] or 0) < 300]


def test_salesforce_503_pauses_the_run_and_the_next_run_resumes_exactly_once(stack, admin, erp, salesforce,
                                                                            monkeypatch):
    monkeypatch.setattr(engine, "SF_CHUNK", 10)
    ids = [erp.create(f"ERP {n:02d}") for n in range(40)]
    _fail_on_call(monkeypatch, SalesforceAccounts, "upsert", 3,
                  lambda: salesforce.inject("503", count=50, path="composite/sobjects"))

    first = stack.sync()

    run = stack.run_item(first["run_id"])
    assert run["status"] == "paused"
    assert "ServiceUnavailable" in run["pause_reason"]
    assert run["counters"]["created"] == 20  # two chunks committed before the outage
    assert "erp" not in stack.watermarks()  # the window is not done: the watermark stays
    salesforce.clear_faults()
    salesforce.clear_requests()

    second = stack.sync()

    assert second == {"status": "resumed", "run_id": first["run_id"], "step": run["step"] + 1}
    summary = stack.summary(first["run_id"])
    assert (summary["created"], summary["failed"]) == (40, 0)
    assert len(_ok_writes(salesforce.requests(), "PATCH", "composite/sobjects/Account")) == 2  # chunks 3 and 4
    assert sorted(a["ERP_Customer_Id__c"] for a in admin.accounts()) == ids
    _accounts_written_once(admin)


def test_an_expired_session_mid_run_is_renewed_without_losing_or_repeating_writes(stack, admin, erp, salesforce,
                                                                                  monkeypatch):
    monkeypatch.setattr(engine, "SF_CHUNK", 10)
    for n in range(30):
        erp.create(f"ERP {n:02d}")
    _fail_on_call(monkeypatch, SalesforceAccounts, "upsert", 2, salesforce.expire_tokens)
    salesforce.clear_requests()  # the admin's own login

    answer = stack.sync()

    summary = stack.summary(answer["run_id"])
    assert (summary["created"], summary["failed"]) == (30, 0)
    assert len([r for r in salesforce.requests() if r["path"].endswith("/oauth2/token")]) == 2  # first + renewal
    assert len(_ok_writes(salesforce.requests(), "PATCH", "composite/sobjects/Account")) == 3
    _accounts_written_once(admin)


def test_erp_down_mid_run_pauses_and_the_next_run_resumes_exactly_once(stack, admin, erp, monkeypatch):
    monkeypatch.setattr(engine, "MAX_BULK", 20)
    admin.create_many([{"Name": f"SF {n:02d}"} for n in range(60)])  # > threshold: Bulk API 2.0 query
    _fail_on_call(monkeypatch, ErpCustomers, "bulk_upsert", 2, erp.server.go_down)

    first = stack.sync()

    run = stack.run_item(first["run_id"])
    assert run["status"] == "paused"
    assert "ErpUnavailable" in run["pause_reason"]
    assert run["checkpoint"]["mode"] == "bulk"
    assert run["checkpoint"]["job_id"]
    assert len(erp.customers()) == 20
    erp.server.come_up()
    erp.server.clear_requests()

    stack.sync()

    summary = stack.summary(first["run_id"])
    assert (summary["created"], summary["failed"]) == (60, 0)
    assert len(_ok_writes(erp.server.requests(), "POST", "/customers/bulk-upsert")) == 2  # chunks 2 and 3 only
    assert len(erp.customers()) == 60
    assert all(c["created_at"] == c["updated_at"] for c in erp.customers())
    assert {c["salesforce_id"] for c in erp.customers()} == {a["Id"] for a in admin.accounts()}


def test_running_out_of_time_hands_over_to_follow_up_invocations(stack, admin, erp, salesforce, monkeypatch):
    monkeypatch.setattr(engine, "MAX_BULK", 25)
    monkeypatch.setattr(engine, "SF_CHUNK", 40)
    monkeypatch.setenv("SYNC_BULK_PART_RECORDS", "40")
    from customer_sync import container

    container.reset()
    for n in range(120):
        erp.create(f"ERP {n:03d}", email=f"e{n}@example.com")
    admin.create_many([{"Name": f"SF {n:03d}", "Phone": f"+1 {n}"} for n in range(120)])

    answer = stack.start()
    invocations = stack.drain(context_factory=lambda: ShortContext(checks=3))

    summary = stack.summary(answer["run_id"])
    assert invocations == summary["invocations"] > 4
    assert (summary["created"], summary["failed"], summary["read"]) == (240, 0, 240)
    log = salesforce.requests()
    # Bulk parts of 40: three upserts of ERP customers, then three updates linking the new ERP customers back
    assert len([r for r in log if r["method"] == "POST" and r["path"].endswith("/jobs/ingest")]) == 3 + 3
    assert len([r for r in log if r["method"] == "POST" and r["path"].endswith("/jobs/query")]) == 1
    assert len(_ok_writes(erp.server.requests(), "POST", "/customers/bulk-upsert")) == 120 // 25 + 1
    accounts = admin.accounts()
    assert len(accounts) == 240
    assert len(erp.customers()) == 240
    assert {c["salesforce_id"] for c in erp.customers()} == {a["Id"] for a in accounts}
    assert {c["customer_id"] for c in erp.customers()} == {a["ERP_Customer_Id__c"] for a in accounts}


def test_the_lock_refuses_an_overlapping_run(stack, admin):
    admin.create_many([{"Name": "Only one"}])
    first = stack.start()

    second = stack.start()

    assert first["status"] == "started"
    assert second["status"] == "skipped"
    assert second["reason"] == "another run holds the lock"
    assert second["run_id"] == first["run_id"]
    stack.drain()
    assert stack.summary(first["run_id"])["created"] == 1
    assert stack.start()["status"] == "started"  # released when the run completed


def test_a_duplicate_continuation_message_claims_nothing(stack, admin, erp):
    admin.create_many([{"Name": f"SF {n}"} for n in range(3)])
    answer = stack.start()
    body = stack.sqs.receive_message(QueueUrl=stack.queue_url, VisibilityTimeout=0)["Messages"][0]["Body"]
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)  # SQS delivers at least once

    stack.drain()

    assert stack.summary(answer["run_id"])["created"] == 3
    assert len(erp.writes()) == 1


def test_the_allocation_guard_stops_the_run_and_the_next_run_resumes(stack, admin, erp, salesforce):
    admin.create_many([{"Name": f"SF {n}"} for n in range(5)])
    erp.create("ERP 1")
    salesforce.set_api_usage(900, 1000)  # 90 % used: above the 80 % guard

    first = stack.sync()

    run = stack.run_item(first["run_id"])
    assert run["status"] == "paused"
    assert "AllocationExhausted" in run["pause_reason"]
    assert len(erp.customers()) == 1
    salesforce.set_api_usage(0, 1_000_000)  # the next day

    assert stack.sync()["status"] == "resumed"
    summary = stack.summary(first["run_id"])
    assert (summary["created"], summary["failed"]) == (6, 0)


@pytest.mark.parametrize(("rule", "winner", "phone"), [("erp_wins", "erp", "+44 3 (ERP)"),
                                                       ("latest_wins", "erp", "+44 3 (ERP)")])
def test_other_conflict_rules(stack, admin, erp, tmp_path, monkeypatch, rule, winner, phone):
    from customer_sync.mapping import DEFAULT_PATH

    mapping = tmp_path / "mapping.toml"
    mapping.write_text(DEFAULT_PATH.read_text().replace('conflict_rule = "salesforce_wins"',
                                                        f'conflict_rule = "{rule}"'))
    monkeypatch.setenv("SYNC_MAPPING_FILE", str(mapping))
    ids = admin.create_many([{"Name": "Contested Ltd", "Phone": "+44 1"}])
    stack.sync()
    cid = erp.customers()[0]["customer_id"]
    admin.update(ids[0], {"Phone": "+44 2 (Salesforce)"})
    erp.patch(cid, phone="+44 3 (ERP)")  # the later change

    answer = stack.sync()

    conflicts = [line for line in stack.report(answer["run_id"]) if line["type"] == "conflict"]
    assert [(c["rule"], c["winner"]) for c in conflicts] == [(rule, winner)]
    account = next(a for a in admin.accounts() if a["Id"] == ids[0])
    assert account["Phone"] == erp.customers()[0]["phone"] == phone


class HandOverAfter:
    """A Lambda context that runs short once `flag["short"]` is set (by the code under test, at a chosen step)."""

    def __init__(self, flag):
        self.function_name, self.memory_limit_in_mb, self.aws_request_id = "customer-sync-worker", 1024, "req"
        self.invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:customer-sync-worker"
        self.flag = flag

    def get_remaining_time_in_millis(self) -> int:
        return 60_000 if self.flag["short"] else 900_000


def test_new_erp_customers_are_linked_back_by_bulk_jobs_across_a_hand_over(stack, admin, erp, salesforce,
                                                                           monkeypatch):
    """Above the threshold, the Accounts whose ERP customers phase 2 created get their ERP_Customer_Id__c
    through Bulk update jobs (no sObject Collections call per 200), and a hand-over in the middle of that
    pass submits every link exactly once."""
    monkeypatch.setattr(engine, "MAX_BULK", 25)
    monkeypatch.setenv("SYNC_BULK_PART_RECORDS", "40")
    from customer_sync import container

    container.reset()
    ids = admin.create_many([{"Name": f"SF {n:03d}"} for n in range(120)])
    flag = {"short": False}
    submit = SalesforceAccounts.submit_bulk

    def submit_then_run_short(self, operation, rows):
        jobs = submit(self, operation, rows)
        if operation == "update" and not flag.get("done"):
            flag["short"] = flag["done"] = True  # the first link job is out: time runs short right after
        return jobs

    monkeypatch.setattr(SalesforceAccounts, "submit_bulk", submit_then_run_short)
    salesforce.clear_requests()
    answer = stack.start()

    stack.work_once(HandOverAfter(flag))  # runs until just after the first link job
    run = stack.run_item(answer["run_id"])
    assert run["status"] == "queued"
    assert len(run["checkpoint"]["link_jobs"]) == 1
    assert not run["checkpoint"].get("link_stream_done")
    flag["short"] = False
    stack.drain(context_factory=lambda: HandOverAfter(flag))

    summary = stack.summary(answer["run_id"])
    assert (summary["created"], summary["failed"]) == (120, 0)
    log = salesforce.requests()
    assert not _ok_writes(log, "PATCH", "composite/sobjects")  # no Collections update for the links
    jobs = admin.session.get(f"{admin.base}/jobs/ingest", timeout=10).json()["records"]
    link_jobs = [j for j in jobs if j["operation"] == "update"]
    assert len(link_jobs) == 3  # 120 links in parts of 40: each link submitted once, none twice
    processed = [admin.session.get(f"{admin.base}/jobs/ingest/{j['id']}", timeout=10).json() for j in link_jobs]
    assert sum(int(p["numberRecordsProcessed"]) for p in processed) == 120
    assert sum(int(p["numberRecordsFailed"]) for p in processed) == 0
    accounts = {a["Id"]: a["ERP_Customer_Id__c"] for a in admin.accounts()}
    customers = {c["salesforce_id"]: c["customer_id"] for c in erp.customers()}
    assert set(accounts) == set(ids)
    assert accounts == customers


def test_a_hand_over_inside_a_bulk_jobs_results_counts_and_links_each_row_once(stack, admin, erp, salesforce,
                                                                               monkeypatch):
    monkeypatch.setattr(engine, "LINK_STEP", 25)
    for n in range(120):
        erp.create(f"ERP {n:03d}")  # above the test threshold of 50: one Bulk upsert job
    flag = {"short": False}
    bulk_update = ErpCustomers.bulk_update

    def link_then_run_short(self, rows):
        results = bulk_update(self, rows)
        if not flag.get("done"):
            flag["short"] = flag["done"] = True  # time runs short right after the first step of links
        return results

    monkeypatch.setattr(ErpCustomers, "bulk_update", link_then_run_short)
    answer = stack.start()
    erp.server.clear_requests()

    stack.work_once(HandOverAfter(flag))
    run = stack.run_item(answer["run_id"])
    [job] = run["checkpoint"]["jobs"]
    assert (run["status"], job["done"], job["successes_done"]) == ("queued", False, 25)
    assert run["counters"]["created"] == 25
    flag["short"] = False
    stack.drain(context_factory=lambda: HandOverAfter(flag))

    summary = stack.summary(answer["run_id"])
    assert (summary["created"], summary["failed"], summary["invocations"]) == (120, 0, 2)
    assert len(_ok_writes(erp.server.requests(), "POST", "/customers/bulk-update")) == 5  # 25 x 4 + 20, none again
    assert all(c["salesforce_id"] for c in erp.customers())
    assert {c["salesforce_id"] for c in erp.customers()} == {a["Id"] for a in admin.accounts()}
