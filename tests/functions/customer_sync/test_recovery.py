"""A worker killed in the middle of a run: its heartbeat stops, the lock lapses minutes later (not 30), and the
next start takes the run over from its checkpoint; every record is still written exactly once, a start while the
heartbeat is fresh is still refused, two starts after a crash resume the run once, and the crashed step's
message, when SQS hands it out again, does nothing.

The crash is a BaseException raised inside the step after a checkpoint: like kill -9, it leaves the lock, the
run "running" and the step message in flight (invisible), and nothing after it runs. The state table's clock is
injected, so "a few minutes later" is a number, not a wait.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from customer_sync import container, engine
from customer_sync.events import StartRequest
from customer_sync.salesforce import SalesforceAccounts

from salesforce_access.observability import logger as layer_logger

LEASE = 300  # SYNC_LOCK_TTL_SECONDS' default: the lock lapses this long after the worker's last heartbeat
VISIBILITY = 1260  # the step queue's visibility timeout in template.yaml


class Killed(BaseException):
    """The worker process dies here (no except clause of the function sees it, as with kill -9)."""


class Clock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(stack) -> Clock:
    fake = Clock()
    container.runs().store.clock = fake
    stack.sqs.set_queue_attributes(QueueUrl=stack.queue_url, Attributes={"VisibilityTimeout": str(VISIBILITY)})
    return fake


def _kill_before_call(monkeypatch, call_number: int) -> None:
    """Kill the worker just before its `call_number`-th Salesforce upsert (the chunks before it are checkpointed)."""
    original = SalesforceAccounts.upsert
    calls = {"n": 0}

    def upsert(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call_number:
            raise Killed
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SalesforceAccounts, "upsert", upsert)


def _crash_mid_run(stack, erp, monkeypatch, count: int = 30) -> tuple[dict[str, Any], dict[str, Any]]:
    """A started run whose first step dies after its first chunk; returns the start answer and the message."""
    monkeypatch.setattr(engine, "SF_CHUNK", 10)
    for n in range(count):
        erp.create(f"ERP {n:02d}")
    _kill_before_call(monkeypatch, 2)
    answer = stack.start()
    [message] = stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)["Messages"]
    with pytest.raises(Killed):
        stack.deliver(message)
    return answer, message


def _ok_upserts(salesforce) -> int:
    return len([r for r in salesforce.requests() if r["method"] == "PATCH" and "composite/sobjects/Account" in
                r["path"] and (r["status"] or 0) < 300])


def _written_once(admin) -> None:
    rows = admin.query("SELECT Id, CreatedDate, LastModifiedDate FROM Account WHERE ERP_Customer_Id__c != null")
    assert rows
    assert all(r["CreatedDate"] == r["LastModifiedDate"] for r in rows)


class Logs:
    """The functions' Powertools JSON log lines since the last `take`."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def clear(self) -> None:
        self.stream.seek(0)
        self.stream.truncate()

    def take(self, message: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stream.getvalue().splitlines() if line.startswith("{")]
        self.clear()
        return [line for line in lines if line.get("message") == message]


@pytest.fixture
def logs() -> Iterator[Logs]:
    logs = Logs()
    handler = logging.StreamHandler(logs.stream)
    handler.setFormatter(layer_logger.registered_formatter)
    service = logging.getLogger(layer_logger.name)
    service.addHandler(handler)
    try:
        yield logs
    finally:
        service.removeHandler(handler)


def _logs(logs: Logs, message: str) -> list[dict[str, Any]]:
    return logs.take(message)


def test_a_crashed_worker_is_taken_over_minutes_later_and_every_record_is_written_once(
        stack, clock, admin, erp, salesforce, monkeypatch, logs):
    answer, stale = _crash_mid_run(stack, erp, monkeypatch)
    run = stack.run_item(answer["run_id"])
    assert (run["status"], run["step"], run["counters"]["created"]) == ("running", 0, 10)

    clock.now += 60  # the heartbeat is a minute old: the worker may still be alive
    refused = stack.start()
    assert (refused["status"], refused["reason"]) == ("skipped", "another run holds the lock")

    clock.now += LEASE  # five minutes without a heartbeat: the worker is dead
    logs.clear()
    recovered = stack.start()

    assert recovered == {"status": "resumed", "run_id": answer["run_id"], "step": 1, "recovered_step": 0}
    [line] = _logs(logs, "customer sync run recovered")
    assert (line["run_id"], line["crashed_step"], line["recovered_by"]) == (answer["run_id"], 0, "start")
    assert line["last_heartbeat"] is not None
    stack.drain()
    summary = stack.summary(answer["run_id"])
    assert (summary["created"], summary["failed"]) == (30, 0)
    assert _ok_upserts(salesforce) == 3  # chunk 1 before the crash, chunks 2 and 3 after: none twice
    _written_once(admin)

    # the crashed step's message comes back once its visibility timeout is over: it claims nothing
    stack.sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=stale["ReceiptHandle"],
                                        VisibilityTimeout=0)
    logs.clear()
    assert stack.drain() == 1
    assert _logs(logs, "duplicate or stale sync message ignored")
    assert _ok_upserts(salesforce) == 3
    assert stack.run_item(answer["run_id"])["status"] == "completed"
    assert stack.start()["status"] == "started"  # the lock was released: the next night starts normally


def test_two_starts_after_a_crash_take_the_run_over_once(stack, clock, admin, erp, salesforce, monkeypatch,
                                                         lambda_context):
    answer, _ = _crash_mid_run(stack, erp, monkeypatch)
    clock.now += LEASE + 1
    runs = container.runs()
    both_read_the_lock = threading.Barrier(2, timeout=30)
    lock_holder = runs.store.lock_holder

    def read_then_wait():
        holder = lock_holder()
        both_read_the_lock.wait()  # both starts saw the stale lock before either took it
        return holder

    monkeypatch.setattr(runs.store, "lock_holder", read_then_wait)  # only the two starts below read it
    answers: list[dict[str, Any]] = []

    def start() -> None:
        answers.append(runs.start(StartRequest(trigger="test"), lambda_context))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(a["status"] for a in answers) == ["resumed", "skipped"]
    assert stack.pending() == 2  # the crashed step's message (in flight) and the one resumed step
    stack.drain()
    summary = stack.summary(answer["run_id"])
    assert (summary["created"], summary["failed"]) == (30, 0)
    assert _ok_upserts(salesforce) == 3
    _written_once(admin)


def test_the_crashed_steps_message_redelivered_after_the_lease_resumes_the_run_without_a_start(
        stack, clock, admin, erp, salesforce, monkeypatch, logs):
    answer, stale = _crash_mid_run(stack, erp, monkeypatch)
    stack.sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=stale["ReceiptHandle"],
                                        VisibilityTimeout=0)

    clock.now += 60  # SQS hands it out again while the lease is fresh: the step may still be running
    assert stack.work_once() == {"batchItemFailures": []}
    assert stack.run_item(answer["run_id"])["counters"]["created"] == 10
    assert stack.pending() == 0

    # the same message after the lease lapsed (the visibility timeout outlasts worker timeout + lease)
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=stale["Body"])
    clock.now += LEASE
    logs.clear()
    stack.drain()

    [line] = _logs(logs, "customer sync run recovered")
    assert (line["crashed_step"], line["recovered_by"]) == (0, "step message redelivered")
    summary = stack.summary(answer["run_id"])
    assert (summary["created"], summary["failed"]) == (30, 0)
    assert _ok_upserts(salesforce) == 3
    _written_once(admin)


def test_a_live_worker_keeps_its_lock_past_the_lease_by_its_heartbeat(stack, clock, admin, erp, salesforce,
                                                                      monkeypatch):
    """The lock lasts from the last heartbeat, not from the step's start: a worker busy inside one chunk for
    longer than the lease is not taken over, and a start meanwhile is refused."""
    monkeypatch.setattr(engine, "SF_CHUNK", 10)
    for n in range(20):
        erp.create(f"ERP {n:02d}")
    runs = container.runs()
    runs.heartbeat_seconds = 0.02
    beat, heartbeat = threading.Event(), runs.store.heartbeat

    def heartbeat_then_signal(run_id: str, token: str) -> None:
        heartbeat(run_id, token)
        beat.set()

    monkeypatch.setattr(runs.store, "heartbeat", heartbeat_then_signal)
    answers: list[dict[str, Any]] = []
    original = SalesforceAccounts.upsert

    def slow_upsert(self, *args, **kwargs):
        if not answers:
            for _ in range(3):  # three leases pass inside this one call, each renewed by a beat
                clock.now += LEASE - 10
                for _ in range(2):  # the second beat surely read the moved clock
                    beat.clear()
                    assert beat.wait(timeout=30), "the heartbeat thread beat"
            answers.append(stack.start())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SalesforceAccounts, "upsert", slow_upsert)
    answer = stack.start()
    stack.drain()

    assert (answers[0]["status"], answers[0]["reason"]) == ("skipped", "another run holds the lock")
    summary = stack.summary(answer["run_id"])
    assert (summary["created"], summary["invocations"]) == (20, 1)
    _written_once(admin)


def test_a_superseded_worker_stops_at_its_next_checkpoint(stack, clock, admin, erp, salesforce, monkeypatch,
                                                          logs):
    """A worker silent past its lease (its heartbeat not getting through) whose run another start took over: its
    next checkpoint is refused, and it ends without committing, pausing or releasing the lock."""
    monkeypatch.setattr(engine, "SF_CHUNK", 10)
    for n in range(20):
        erp.create(f"ERP {n:02d}")
    original = SalesforceAccounts.upsert
    taken: list[dict[str, Any]] = []

    def overtaken_upsert(self, *args, **kwargs):
        if not taken:
            clock.now += LEASE + 1
            taken.append(stack.start())  # the next start: no heartbeat for a lease
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SalesforceAccounts, "upsert", overtaken_upsert)
    answer = stack.start()
    logs.clear()
    assert stack.work_once() == {"batchItemFailures": []}

    assert taken[0]["status"] == "resumed"
    assert _logs(logs, "customer sync step stopped: another invocation took the run over")
    run = stack.run_item(answer["run_id"])
    assert (run["status"], run["step"], run["counters"].get("created", 0)) == ("queued", 1, 0)
    stack.drain()
    summary = stack.summary(answer["run_id"])  # the superseded upsert of chunk 1 is repeated: by key, no duplicate
    assert (summary["created"] + summary["updated"], summary["failed"]) == (20, 0)
    assert len(admin.accounts()) == 20


def test_the_heartbeat_beats_until_stopped_and_reports_a_lost_lease() -> None:
    from customer_sync.runs import Heartbeat
    from customer_sync.state import LeaseLost

    beats, lost = threading.Semaphore(0), threading.Event()
    calls = {"n": 0}

    def beat() -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            lost.set()
            raise LeaseLost("taken over")
        beats.release()

    with Heartbeat(beat, every=0.001) as heartbeat:
        assert beats.acquire(timeout=10)
        assert beats.acquire(timeout=10)
        assert lost.wait(timeout=10)
    with pytest.raises(LeaseLost):
        heartbeat.check()
    assert calls["n"] == 3  # the thread ended at the lost lease


def test_the_template_redelivers_a_crashed_step_after_its_lease_and_alarms_on_a_recovery() -> None:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = Path(__file__).resolve().parents[3] / "template.yaml"
    resources = yaml.load(template.read_text(), Loader=Loader)["Resources"]  # noqa: S506 - SafeLoader subclass
    worker = resources["CustomerSyncWorkerFunction"]["Properties"]
    lease = int(resources["CustomerSyncStartFunction"]["Properties"]["Environment"]["Variables"]
                ["SYNC_LOCK_TTL_SECONDS"])
    visibility = resources["CustomerSyncQueue"]["Properties"]["VisibilityTimeout"]

    assert lease == LEASE
    assert visibility == VISIBILITY > worker["Timeout"] + lease  # a crashed step's lease has lapsed when it is back
    alarm = resources["CustomerSyncRecoveredAlarm"]["Properties"]
    assert (alarm["MetricName"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "SyncRunsRecovered", 1, "GreaterThanOrEqualToThreshold")
