"""Pattern 3, Batch sync: the customer sync (ERP <-> Salesforce Accounts) under every fault of the matrix.

Written against the public surface only (the `start` and `work` handlers, the settings documented in
docs/batch-sync.md, the run summary in the report bucket, the documented metrics), because the engine behind
them is being reworked for scale. The faults are put into the real parts: the Salesforce emulator, the ERP
stand-in, moto.

Each test checks that no customer is lost (at the end every ERP customer and every Account are linked one to
one), that none is written twice (an Account created from the ERP was written once: its LastModifiedDate is its
CreatedDate; an ERP customer created from Salesforce likewise), and that the fault shows in a documented metric
(SyncRunsPaused, SyncContinuations, SyncDuplicateMessages, SyncOverlapsRefused, the layer's
SalesforceRetries and SalesforceReauthentications) or log line.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests
from customer_sync import container
from customer_sync import handler as sync

from salesforce_emulator import Emulator
from salesforce_emulator.connection import https_session
from stand_ins.erp import ErpServer

from .conftest import CountdownContext

TABLE, BUCKET, QUEUE = "state", "sync-reports", "customer-sync"
RESERVE_SECONDS = 90
UPSERT = "composite/sobjects/Account"
ACCOUNTS = "SELECT Id, Name, ERP_Customer_Id__c, CreatedDate, LastModifiedDate FROM Account"


@pytest.fixture
def salesforce_emulator() -> Iterator[Emulator]:
    """A fresh org per test: a sync moves every Account, so the session's shared org would bring others'."""
    with Emulator(daily_api_limit=1_000_000) as emu:
        yield emu


class Admin:
    """Salesforce as a person (the admin user, not the integration user whose writes the sync skips)."""

    def __init__(self, emu: Emulator):
        self.info = emu.info
        self.session = https_session(self.info)
        self.base = f"{self.info['instance_url']}/services/data/v{self.info['api_version']}"
        self.login()

    def login(self) -> None:
        info = self.info
        token = self.session.post(f"{info['login_url']}/services/oauth2/token", timeout=10, data={
            "grant_type": "password", "client_id": info["client_id"], "client_secret": info["client_secret"],
            "username": info["admin_username"], "password": info["admin_password"]}).json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"

    def create_accounts(self, names: list[str]) -> list[str]:
        records = [{"attributes": {"type": "Account"}, "Name": name} for name in names]
        response = self.session.post(f"{self.base}/composite/sobjects", json={"allOrNone": True, "records": records},
                                     timeout=30)
        response.raise_for_status()
        return [item["id"] for item in response.json()]

    def accounts(self) -> list[dict[str, Any]]:
        response = self.session.get(f"{self.base}/query", params={"q": ACCOUNTS}, timeout=30)
        if response.status_code == 401:  # a test expired every token
            self.login()
            return self.accounts()
        response.raise_for_status()
        return response.json()["records"]


class Erp:
    """The ERP stand-in, empty, and what a clerk enters in the ERP."""

    def __init__(self, server: ErpServer):
        self.server = server
        server.customers.clear()  # the seed customers would join every sync

    def create(self, names: list[str]) -> None:
        for name in names:
            self.server.customers.create({"name": name, "active": True, "updated_by": "erp-clerk"})

    def customers(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.server.url}/customers", params={"limit": 500}, timeout=10).json()["items"]


@pytest.fixture
def erp() -> Iterator[Erp]:
    with ErpServer() as server:
        yield Erp(server)


@pytest.fixture
def admin(salesforce: Emulator) -> Admin:
    return Admin(salesforce)


class Sync:
    """The deployed pieces (moto) and what drives them: the schedule calls `start`, the SQS event source mapping
    hands each step message to `work`."""

    def __init__(self, context: Callable[[], Any]):
        self.sqs, self.s3 = boto3.client("sqs"), boto3.client("s3")
        boto3.client("dynamodb").create_table(
            TableName=TABLE, AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
        self.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        self.queue_url = self.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        self.context = context
        self.invocations = 0

    def start(self) -> dict[str, Any]:
        return sync.start({"mode": "incremental", "trigger": "schedule"}, CountdownContext(60_000))

    def receive(self) -> list[dict[str, Any]]:
        return self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=1,
                                        AttributeNames=["All"]).get("Messages", [])

    def deliver(self, message: dict[str, Any]) -> dict[str, Any]:
        event = {"Records": [{
            "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": {"ApproximateReceiveCount": message["Attributes"]["ApproximateReceiveCount"],
                           "SentTimestamp": "0", "SenderId": "x", "ApproximateFirstReceiveTimestamp": "0"},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:eu-west-1:123456789012:{QUEUE}", "awsRegion": "eu-west-1"}]}
        self.invocations += 1
        return sync.work(event, self.context())

    def drain(self, limit: int = 100) -> None:
        while self.invocations < limit and (messages := self.receive()):
            if not self.deliver(messages[0])["batchItemFailures"]:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
        assert not self.receive(), "the run did not settle"

    def run(self) -> dict[str, Any]:
        answer = self.start()
        self.drain()
        return answer

    def summary(self, run_id: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=BUCKET, Key=f"customer-sync/runs/{run_id}/summary.json")["Body"]
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body.read())


@pytest.fixture
def stack(salesforce: Emulator, erp: Erp, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sync]:
    """The documented settings, with a short ERP timeout and no watermark lag (the test's writes are fresh)."""
    runner = Sync(lambda: CountdownContext(900_000))
    for name, value in {"STATE_TABLE_NAME": TABLE, "SYNC_QUEUE_URL": runner.queue_url, "SYNC_REPORT_BUCKET": BUCKET,
                        "ERP_BASE_URL": erp.server.url, "ERP_READ_TIMEOUT_SECONDS": "0.5", "ERP_MAX_ATTEMPTS": "2",
                        "SYNC_WATERMARK_LAG_SECONDS": "0", "SYNC_TIME_RESERVE_SECONDS": str(RESERVE_SECONDS)}.items():
        monkeypatch.setenv(name, value)
    container.reset()
    yield runner
    container.reset()


def seed(admin: Admin, erp: Erp, count: int = 12) -> None:
    erp.create([f"ERP {n:02d}" for n in range(count)])
    admin.create_accounts([f"SF {n:02d}" for n in range(count)])


def in_step_and_written_once(admin: Admin, erp: Erp, count: int = 12) -> None:
    """Every customer on both sides, linked one to one, and what the sync created written once."""
    accounts, customers = admin.accounts(), erp.customers()
    assert sorted(a["Name"] for a in accounts) == sorted(c["name"] for c in customers) == \
        sorted([f"ERP {n:02d}" for n in range(count)] + [f"SF {n:02d}" for n in range(count)])
    assert {(a["Id"], a["ERP_Customer_Id__c"]) for a in accounts} == \
        {(c["salesforce_id"], c["customer_id"]) for c in customers}
    from_erp = [a for a in accounts if a["Name"].startswith("ERP")]
    assert all(a["CreatedDate"] == a["LastModifiedDate"] for a in from_erp)
    from_salesforce = [c for c in customers if c["name"].startswith("SF")]
    assert all(c["created_at"] == c["updated_at"] for c in from_salesforce)


def completed(stack: Sync, run_id: str, count: int = 12) -> dict[str, Any]:
    summary = stack.summary(run_id)
    assert summary is not None, "the run did not complete"
    assert (summary["created"], summary["failed"]) == (2 * count, 0)
    return summary


def paused(observed: Any, reason: str) -> None:
    [line] = observed.logs("customer sync paused; the next run resumes from the checkpoint")
    assert reason in line["reason"]
    assert observed.metrics()["SyncRunsPaused"] == 1


# -- Salesforce faults -------------------------------------------------------------------------------------------


def test_session_expiry_in_the_middle_of_the_run(stack, admin, erp, salesforce, observed):
    seed(admin, erp)
    answer = stack.start()
    stack.context = lambda: expired_then(RunsOutAfterAWrite(salesforce, erp), salesforce)

    stack.drain()  # every step of the run finds every token expired

    summary = completed(stack, answer["run_id"])
    in_step_and_written_once(admin, erp)
    metrics = observed.metrics()
    assert summary["invocations"] >= 2
    assert metrics["SalesforceReauthentications"] >= 1
    assert observed.logs("Salesforce session expired; re-authenticating once and replaying")


@pytest.mark.parametrize("kind", ["503", "UNABLE_TO_LOCK_ROW"])
def test_a_passing_salesforce_fault_is_retried_inside_the_step(stack, admin, erp, salesforce, fast_layer, observed,
                                                               kind):
    seed(admin, erp)
    salesforce.inject(kind, count=2, method="PATCH", path=UPSERT)

    answer = stack.run()

    completed(stack, answer["run_id"])
    in_step_and_written_once(admin, erp)
    assert observed.metrics()["SalesforceRetries"] == 2


@pytest.mark.parametrize("kind", ["503", "UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED"])
def test_a_lasting_salesforce_fault_pauses_the_run_and_the_next_run_resumes_it_once(stack, admin, erp, salesforce,
                                                                                   fast_layer, observed, kind):
    seed(admin, erp)
    salesforce.inject(kind, count=1000, method="PATCH", path=UPSERT)

    first = stack.run()

    assert stack.summary(first["run_id"]) is None
    paused(observed, {"503": "ServiceUnavailable", "UNABLE_TO_LOCK_ROW": "RowLocked",
                      "REQUEST_LIMIT_EXCEEDED": "RequestLimitExceeded"}[kind])
    salesforce.clear_faults()

    second = stack.run()  # the next night

    assert second["status"] == "resumed"
    assert second["run_id"] == first["run_id"]
    completed(stack, first["run_id"])
    in_step_and_written_once(admin, erp)
    assert observed.metrics()["SyncRunsResumed"] == 1


# -- slow answers, dropped connections, the ERP down -------------------------------------------------------------


class HeldAnswer:
    """Salesforce takes the first PATCH upsert and answers it only once `release` is set: a slow answer that lands
    after the client's retry, ordered by events rather than by how long the rest of the run takes."""

    def __init__(self, salesforce: Emulator, monkeypatch: pytest.MonkeyPatch):
        self.held, self.release = threading.Event(), threading.Event()
        self.app = app = salesforce.app
        handle = app.handle

        def slow(req: Any, *, internal: bool = False) -> Any:
            if not internal and req.method == "PATCH" and UPSERT in req.path and not self.held.is_set():
                self.held.set()
                self.release.wait()
            return handle(req, internal=internal)

        monkeypatch.setattr(app, "handle", slow)

    def answer(self) -> None:
        self.release.set()
        assert self.app.wait_idle(timeout=10), "the held request ended"


@pytest.fixture
def held_upsert(salesforce: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldAnswer]:
    held = HeldAnswer(salesforce, monkeypatch)
    yield held
    held.release.set()  # never left hanging, whatever the test did


def test_slow_answers_past_the_timeouts(stack, admin, erp, salesforce, short_timeouts, held_upsert, observed):
    seed(admin, erp)
    erp.server.inject("hang", count=1, method="GET", path=r"^/customers", delay_seconds=2)  # read timeout 0.5 s
    # and the first upsert is answered after the layer's 1 s read timeout, once its retry is done

    answer = stack.run()

    assert held_upsert.held.is_set()
    completed(stack, answer["run_id"])
    in_step_and_written_once(admin, erp)
    assert observed.metrics()["SalesforceRetries"] == 1  # an upsert by external id is safe to send again
    before = {a["Id"]: (a["Name"], a["ERP_Customer_Id__c"]) for a in admin.accounts()}
    held_upsert.answer()  # the abandoned slow upsert ends: the same values again
    assert {a["Id"]: (a["Name"], a["ERP_Customer_Id__c"]) for a in admin.accounts()} == before


def test_an_erp_that_stays_slow_pauses_the_run(stack, admin, erp, observed):
    seed(admin, erp)
    erp.server.inject("hang", count=None, method="GET", path=r"^/customers", delay_seconds=2)

    first = stack.run()

    paused(observed, "ErpUnavailable")
    erp.server.clear_faults()
    stack.run()
    completed(stack, first["run_id"])
    in_step_and_written_once(admin, erp)


def test_dropped_connections(stack, admin, erp, salesforce, fast_layer, observed):
    seed(admin, erp)
    erp.server.inject("drop", count=1, method="POST", path=r"^/customers/bulk-upsert")
    salesforce.inject("drop", count=1, method="PATCH", path=UPSERT)

    answer = stack.run()

    completed(stack, answer["run_id"])
    in_step_and_written_once(admin, erp)
    assert observed.metrics()["SalesforceRetries"] == 1


def test_the_erp_down_pauses_the_run_and_the_next_run_resumes_it_once(stack, admin, erp, observed):
    seed(admin, erp)
    erp.server.go_down()  # connections refused

    first = stack.run()

    paused(observed, "ErpUnavailable")
    erp.server.come_up()
    second = stack.run()

    assert (second["status"], second["run_id"]) == ("resumed", first["run_id"])
    completed(stack, first["run_id"])
    in_step_and_written_once(admin, erp)


# -- out of time, redelivery, duplicates -------------------------------------------------------------------------


class RunsOutAfterAWrite:
    """A worker invocation's context whose time runs out as soon as the invocation has committed one write to
    either system: every step makes progress, and every step ends in the middle of the run."""

    def __init__(self, salesforce: Emulator, erp: Erp):
        self.salesforce, self.erp = salesforce, erp
        self.baseline: int | None = None
        self.function_name, self.memory_limit_in_mb, self.aws_request_id = "customer-sync-worker", 1024, "r"
        self.invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:customer-sync-worker"

    def _writes(self) -> int:
        logs = self.salesforce.requests() + self.erp.server.requests()
        return sum(1 for r in logs if r["method"] in ("POST", "PATCH", "PUT", "DELETE") and (r["status"] or 0) < 300
                   and "/oauth2/" not in r["path"])

    def get_remaining_time_in_millis(self) -> int:
        writes = self._writes()
        if self.baseline is None:
            self.baseline = writes
        return 900_000 if writes == self.baseline else (RESERVE_SECONDS - 1) * 1000


def expired_then(context: Any, salesforce: Emulator) -> Any:
    """The next invocation starts after every Salesforce token expired (a session timeout between two steps)."""
    salesforce.expire_tokens()
    return context


def test_running_out_of_time_in_the_middle_of_the_run(stack, admin, erp, salesforce, observed):
    seed(admin, erp)
    stack.context = lambda: RunsOutAfterAWrite(salesforce, erp)

    answer = stack.run()

    summary = completed(stack, answer["run_id"])
    in_step_and_written_once(admin, erp)
    continuations = observed.metrics()["SyncContinuations"]
    assert continuations >= 1
    assert summary["invocations"] == stack.invocations == continuations + 1


def test_an_sqs_redelivery_of_a_step_message(stack, admin, erp, observed):
    seed(admin, erp)
    answer = stack.start()
    [message] = stack.receive()

    stack.deliver(message)  # the step runs (and completes the run)...
    stack.deliver(message)  # ...and SQS hands the same message over again before its delete

    completed(stack, answer["run_id"])
    in_step_and_written_once(admin, erp)
    assert observed.metrics()["SyncDuplicateMessages"] == 1
    assert observed.logs("duplicate or stale sync message ignored")


def test_the_schedule_firing_twice(stack, admin, erp, observed):
    seed(admin, erp)

    first = stack.start()
    second = stack.start()  # EventBridge Scheduler delivers at least once
    stack.drain()

    assert (second["status"], second["run_id"]) == ("skipped", first["run_id"])
    completed(stack, first["run_id"])
    in_step_and_written_once(admin, erp)
    assert observed.metrics()["SyncOverlapsRefused"] == 1


# -- the worker killed -------------------------------------------------------------------------------------------


class Killed(BaseException):
    """The worker process dies here: no except clause of the function sees it, as with kill -9."""


def test_the_worker_killed_in_the_middle_of_the_run(stack, admin, erp, monkeypatch, observed):
    """Killed after phase 1 committed: the lock and the run stay as they were and the step message in flight.
    A start while the heartbeat is fresh is refused; five minutes after it (the state table's clock moved, not
    waited for) the next start takes the run over and it completes with each record written once; the crashed
    step's message, back later, claims nothing."""
    from customer_sync.erp import ErpCustomers

    clock = {"now": 1_800_000_000.0}
    container.runs().store.clock = lambda: clock["now"]
    stack.sqs.set_queue_attributes(QueueUrl=stack.queue_url, Attributes={"VisibilityTimeout": "1260"})
    seed(admin, erp)
    calls = {"n": 0}
    bulk_upsert = ErpCustomers.bulk_upsert

    def killed_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise Killed
        return bulk_upsert(self, *args, **kwargs)

    monkeypatch.setattr(ErpCustomers, "bulk_upsert", killed_once)
    first = stack.start()
    [crashed] = stack.receive()
    with pytest.raises(Killed):
        stack.deliver(crashed)

    clock["now"] += 60
    assert stack.start()["status"] == "skipped"
    clock["now"] += 300
    second = stack.start()
    stack.drain()

    assert (second["status"], second["run_id"]) == ("resumed", first["run_id"])
    assert second["recovered_step"] == 0
    completed(stack, first["run_id"])
    in_step_and_written_once(admin, erp)
    [line] = observed.logs("customer sync run recovered")
    assert (line["run_id"], line["crashed_step"], line["recovered_by"]) == (first["run_id"], 0, "start")
    stack.sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=crashed["ReceiptHandle"],
                                        VisibilityTimeout=0)
    stack.drain()
    in_step_and_written_once(admin, erp)
    metrics = observed.metrics()
    assert (metrics["SyncRunsRecovered"], metrics["SyncOverlapsRefused"], metrics["SyncDuplicateMessages"]) == (1, 1, 1)
