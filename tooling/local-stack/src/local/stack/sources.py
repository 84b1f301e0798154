"""Event sources: SQS event source mappings, EventBridge rules' function targets, and schedules.

SQS, as Lambda's pollers do it: long-poll the queue, invoke with a batch in the SQS event shape, delete what
succeeded; with ReportBatchItemFailures only the listed items stay, without it a failed invocation leaves the
whole batch. What stays becomes visible again after the visibility timeout, and the queue's redrive policy
(moto implements maxReceiveCount) moves a poison message to its dead-letter queue.

EventBridge: moto matches the rules' patterns and delivers to SQS targets, but never invokes a function, so
each function target has a tap queue (see aws.py) that is polled here; the event is then invoked
asynchronously, as EventBridge invokes Lambda: retried MaximumRetryAttempts times (EventInvokeConfig,
default 2) after a failure, then sent to the function's DeadLetterQueue or OnFailure destination if it has
one. Schedules are fired on demand (`fire`), with the same asynchronous semantics.

Hand-written because no library serves: moto records event source mappings but invokes nothing without Docker,
and SAM CLI's `sam local` has no event sources at all.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .cfn import ACCOUNT_ID
from .template import REGION, Function, ScheduleEvent, SqsEvent

Invoke = Callable[[str, Any], Any]  # (function logical id, event) -> InvocationResult


class Activity:
    """Counts work in flight (batches being processed, async invocations pending) for wait_idle."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()
        self.last_change = time.monotonic()

    def __enter__(self) -> Activity:
        with self._lock:
            self._count += 1
            self.last_change = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._count -= 1
            self.last_change = time.monotonic()

    @property
    def busy(self) -> bool:
        return self._count > 0


@dataclass
class Delivery:
    """One batch or one asynchronous invocation, for the stack's history (tests and the demo read it)."""

    function: str
    source: str
    records: int
    ok: bool
    failed_ids: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    at: float = field(default_factory=time.time)


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A received SQS message as a record of Lambda's SQS event."""
    attributes = {k: v for k, v in (message.get("Attributes") or {}).items()}
    message_attributes = {}
    for name, attr in (message.get("MessageAttributes") or {}).items():
        entry: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": attr.get("DataType")}
        if "StringValue" in attr:
            entry["stringValue"] = attr["StringValue"]
        if "BinaryValue" in attr:
            import base64

            entry["binaryValue"] = base64.b64encode(attr["BinaryValue"]).decode()
        message_attributes[name] = entry
    return {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
        "attributes": attributes, "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
    }


def failed_items(payload: Any, message_ids: set[str]) -> set[str] | None:
    """The ids a ReportBatchItemFailures response lists; None when the response is invalid (the whole batch
    then counts as failed, as Lambda treats it)."""
    if payload is None or payload == {}:
        return set()
    if not isinstance(payload, dict):
        return None
    items = payload.get("batchItemFailures")
    if items is None:
        return set()
    if not isinstance(items, list):
        return None
    ids = set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in message_ids:
            return None
        ids.add(identifier)
    return ids


class SqsPoller:
    """One event source mapping: a few polling threads, each invoking with the batches it receives."""

    def __init__(self, fn: Function, mapping: SqsEvent, queue_url: str, queue_arn: str, sqs: Callable[[], Any],
                 invoke: Invoke, activity: Activity, history: list[Delivery], threads: int = 2):
        self.fn, self.mapping, self.queue_url, self.queue_arn = fn, mapping, queue_url, queue_arn
        self.sqs, self.invoke, self.activity, self.history = sqs, invoke, activity, history
        self.threads = max(1, min(threads, mapping.max_concurrency))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> SqsPoller:
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True, name=f"sqs-{self.fn.logical_id}-{i}")
            thread.start()
            self._threads.append(thread)
        return self

    def request_stop(self) -> None:
        """Receive nothing more; a batch in flight finishes (or fails when its worker is stopped)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self) -> None:
        client = self.sqs()
        while not self._stop.is_set():
            try:
                with self.activity:  # a receive in progress may hold messages already invisible
                    messages = client.receive_message(
                        QueueUrl=self.queue_url, MaxNumberOfMessages=min(self.mapping.batch_size, 10),
                        WaitTimeSeconds=0, AttributeNames=["All"], MessageAttributeNames=["All"],
                    ).get("Messages", [])
                    if messages:
                        self.process(client, messages)
                if not messages:
                    self._stop.wait(0.2)
            except Exception as exc:
                if self._stop.is_set():
                    return
                print(f"[local] SQS poller for {self.fn.logical_id}: {type(exc).__name__}: {exc}", flush=True)
                self._stop.wait(1.0)

    def process(self, client: Any, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, self.queue_arn) for m in messages]}
        result = self.invoke(self.fn.logical_id, event)
        ids = {m["MessageId"] for m in messages}
        if not result.ok:
            failed: set[str] | None = ids
        elif self.mapping.report_batch_item_failures:
            failed = failed_items(result.payload, ids)
            if failed is None:
                print(f"[local] {self.fn.logical_id}: invalid batchItemFailures response; the batch is retried",
                      flush=True)
                failed = ids
        else:
            failed = set()
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start:start + 10]
            client.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)])
        self.history.append(Delivery(self.fn.logical_id, f"sqs:{self.mapping.queue}", len(messages), not failed,
                                     sorted(failed), result.error))


class AsyncInvoker:
    """Lambda's asynchronous invocation: retries after a function error, then the failure destination."""

    def __init__(self, invoke: Invoke, sqs: Callable[[], Any], activity: Activity, history: list[Delivery],
                 failure_queue_url: Callable[[Function], str | None], retry_delays: tuple[float, ...] = (1.0, 2.0)):
        self.invoke, self.sqs, self.activity, self.history = invoke, sqs, activity, history
        self.failure_queue_url = failure_queue_url
        self.retry_delays = retry_delays
        self.stopping = threading.Event()  # set by the stack's stop: no more retries, nothing sent anywhere

    def submit(self, fn: Function, event: Any, source: str, retries: int | None = None) -> None:
        self.activity.__enter__()

        def run() -> None:
            try:
                self.run(fn, event, source, retries)
            except Exception:
                if not self.stopping.is_set():  # the stack stopped under it: nothing to report
                    raise
            finally:
                self.activity.__exit__()

        threading.Thread(target=run, daemon=True, name=f"async-{fn.logical_id}").start()

    def run(self, fn: Function, event: Any, source: str, retries: int | None = None) -> Any:
        """Invoke until success or retries are exhausted; returns the last InvocationResult."""
        attempts = 1 + (fn.maximum_retry_attempts if retries is None else retries)
        result = None
        for attempt in range(attempts):
            result = self.invoke(fn.logical_id, event)
            self.history.append(Delivery(fn.logical_id, source, 1, result.ok, error=result.error))
            if result.ok or self.stopping.is_set():
                return result
            if attempt + 1 < attempts:
                self.stopping.wait(self.retry_delays[min(attempt, len(self.retry_delays) - 1)])
                if self.stopping.is_set():
                    return result
        self._failed(fn, event, result, attempts)
        return result

    def _failed(self, fn: Function, event: Any, result: Any, attempts: int) -> None:
        url = self.failure_queue_url(fn)
        if not url:
            print(f"[local] {fn.logical_id}: asynchronous event dropped after {attempts} attempt(s) "
                  "(the function has no DeadLetterQueue or OnFailure destination)", flush=True)
            return
        error = result.error or {}
        if fn.on_failure_kind == "dlq":
            self.sqs().send_message(QueueUrl=url, MessageBody=json.dumps(event), MessageAttributes={
                "RequestID": {"DataType": "String", "StringValue": result.request_id},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {"DataType": "String", "StringValue": str(error.get("errorMessage", ""))[:1000]
                                 or "error"}})
        else:
            record = {
                "version": "1.0", "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "requestContext": {"requestId": result.request_id, "functionArn": f"{fn.arn}:$LATEST",
                                   "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
                "requestPayload": event,
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                "responsePayload": error,
            }
            self.sqs().send_message(QueueUrl=url, MessageBody=json.dumps(record))


class TapPoller:
    """Reads a rule's tap queue and hands each event to the asynchronous invoker (then deletes it)."""

    def __init__(self, fn: Function, rule: str, queue_url: str, sqs: Callable[[], Any], invoker: AsyncInvoker,
                 activity: Activity):
        self.fn, self.rule, self.queue_url, self.sqs, self.invoker, self.activity = (fn, rule, queue_url, sqs,
                                                                                       invoker, activity)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"tap-{fn.logical_id}")

    def start(self) -> TapPoller:
        self._thread.start()
        return self

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        client = self.sqs()
        while not self._stop.is_set():
            try:
                with self.activity:
                    messages = client.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                      WaitTimeSeconds=0).get("Messages", [])
                    for message in messages:
                        try:
                            event = json.loads(message["Body"])
                        except ValueError:
                            event = message["Body"]
                        self.invoker.submit(self.fn, event, f"rule:{self.rule}")
                        client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                if not messages:
                    self._stop.wait(0.2)
            except Exception as exc:
                if self._stop.is_set():
                    return
                print(f"[local] EventBridge tap for {self.fn.logical_id}: {type(exc).__name__}: {exc}", flush=True)
                self._stop.wait(1.0)


def schedule_event(schedule: ScheduleEvent, rule_arn: str) -> Any:
    """What the function receives when the schedule fires."""
    if schedule.input is not None:
        try:
            return json.loads(schedule.input)
        except ValueError:
            return schedule.input
    if schedule.kind == "scheduler":
        return {}
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT_ID, "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
            "resources": [rule_arn], "detail": {}}
