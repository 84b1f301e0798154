"""Fire and Forget (pattern 2): messages per second through the billing consumer, batches of 10 against single
messages, with billing answering in 50 ms.

The billing stand-in (``--latency``) and the Salesforce emulator run as child processes; SQS and DynamoDB are
moto, in this process. For each batch size, `messages` signed contracts (API shape) are queued, and this
process plays Lambda's event source mapping: receive up to the batch size, invoke the warm handler with the
SQS event, delete what it did not report as failed, until the queue is empty. Every contract must end with
exactly one billing account and ``Billing_Status__c = Active`` in Salesforce, or the run fails.

Two rates per batch size: through the handler (the sum of its invocation times: what Lambda bills, and what
one concurrent consumer can do) and end to end (including the receive and delete calls the event source
mapping makes). moto answers in-process, so DynamoDB (the idempotency record: a put and an update per
message) is faster here than over the network in AWS.

    python -m patterns_benchmarks.fire_and_forget [--messages 200] [--billing-latency-ms 50]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import requests

from patterns_benchmarks.harness import (
    Child,
    Context,
    EmulatorControl,
    MotoClock,
    Org,
    child,
    create_state_table,
    emulator,
    environment,
    fresh_aws,
    import_paths,
    layer_secret,
    quiet,
    table,
    template_environment,
)


def run(messages: int = 200, billing_latency_ms: float = 50.0, batch_sizes: Sequence[int] = (1, 10)) -> dict[str, Any]:
    import boto3

    import_paths("billing_consumer")
    results: dict[str, Any] = {"messages": messages, "billing_latency_ms": billing_latency_ms, "batches": {}}
    with emulator() as sf, child("stand_ins.billing", "--latency", str(billing_latency_ms / 1000)) as billing, \
            fresh_aws():
        org = Org(sf)
        account_id = org.create("Account", [{"Name": "Fire and Forget benchmark"}])[0]
        sqs = boto3.client("sqs")
        dlq_url = sqs.create_queue(QueueName="contracts-dlq")["QueueUrl"]
        queue_url = sqs.create_queue(QueueName="contracts", Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        create_state_table()
        env = template_environment("BillingConsumerFunction", BILLING_API_URL=billing["url"],
                                   CONTRACTS_DLQ_URL=dlq_url, IDEMPOTENCY_TABLE_NAME="state",
                                   STATE_TABLE_NAME="state", **layer_secret(sf))
        with environment(env), quiet():
            from billing_consumer import consumer as application
            from billing_consumer import handler as consumer

            application.reset()
            try:
                mapping = Mapping(sqs, queue_url, queue_arn, consumer.handler)
                _queue(sqs, queue_url, org, account_id, 1)  # warm-up: token, clients, code paths
                mapping.drain(1)
                control = EmulatorControl(sf)
                for size in batch_sizes:
                    results["batches"][size] = _measure(mapping, org, account_id, billing, control, messages, size)
            finally:
                application.reset()
    return results


class Mapping:
    """Lambda's SQS event source mapping, played in this process."""

    def __init__(self, sqs: Any, queue_url: str, queue_arn: str, handler: Any):
        self.sqs, self.queue_url, self.queue_arn, self.handler = sqs, queue_url, queue_arn, handler

    def drain(self, batch_size: int) -> dict[str, float]:
        invocations, handler_seconds, moto_seconds, failures = 0, 0.0, 0.0, 0
        started = time.perf_counter()
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=batch_size,
                                           AttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
            if not got:
                break
            event = {"Records": [_record(m, self.queue_arn) for m in got]}
            with MotoClock().running() as moto:
                invoked = time.perf_counter()
                reply = self.handler(event, Context("billing-consumer", timeout_seconds=120))
                handler_seconds += time.perf_counter() - invoked
            moto_seconds += moto.seconds
            invocations += 1
            failed = {item["itemIdentifier"] for item in reply["batchItemFailures"]}
            failures += len(failed)
            done = [m for m in got if m["MessageId"] not in failed]
            if done:
                self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        return {"seconds": time.perf_counter() - started, "handler_seconds": handler_seconds,
                "moto_seconds": moto_seconds,
                "invocations": invocations, "failures": failures}


def _record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": {"ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                           "SentTimestamp": attributes.get("SentTimestamp", "0"), "SenderId": "AIDAEXAMPLE",
                           "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0")},
            "messageAttributes": {}, "md5OfBody": message["MD5OfBody"], "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn, "awsRegion": queue_arn.split(":")[3]}


def _queue(sqs: Any, queue_url: str, org: Org, account_id: str, count: int) -> list[str]:
    """`count` new Contracts in the org, each signed: the API body on the queue, as API Gateway puts it there."""
    contract_ids = org.create("Contract", [{"AccountId": account_id, "StartDate": "2025-03-01", "ContractTerm": 12,
                                            "Billing_Status__c": "Pending"}] * count)
    bodies = [json.dumps({"contract_id": c, "account_id": account_id, "signed_at": "2025-03-01T09:30:00Z"})
              for c in contract_ids]
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start:start + 10])])
    return contract_ids


def _measure(mapping: Mapping, org: Org, account_id: str, billing: Child, control: EmulatorControl, messages: int,
             batch_size: int) -> dict[str, float]:
    contract_ids = _queue(mapping.sqs, mapping.queue_url, org, account_id, messages)
    requests.delete(f"{billing['control_url']}/requests", timeout=10).raise_for_status()
    control.clear_requests()
    drained = mapping.drain(batch_size)
    billing_posts = [r for r in requests.get(f"{billing['control_url']}/requests", timeout=10).json()["requests"]
                     if r["method"] == "POST" and r["path"] == "/billing-accounts"]
    api_calls = control.api_calls()
    active = _count_active(org, contract_ids)
    if drained["failures"] or len(billing_posts) != messages or active != messages:
        raise RuntimeError(f"batch size {batch_size}: {drained['failures']} failures, {len(billing_posts)} billing "
                           f"calls and {active} active contracts for {messages} messages")
    return {**drained, "messages_per_second": messages / drained["handler_seconds"],
            "end_to_end_per_second": messages / drained["seconds"],
            "ms_per_message": drained["handler_seconds"] * 1000 / messages,
            "without_moto_ms_per_message": (drained["handler_seconds"] - drained["moto_seconds"]) * 1000 / messages,
            "api_calls_per_message": api_calls / messages}


def _count_active(org: Org, contract_ids: list[str]) -> int:
    active = 0
    for start in range(0, len(contract_ids), 100):
        ids = ", ".join(f"'{c}'" for c in contract_ids[start:start + 100])  # ids the org itself just returned
        soql = f"SELECT Id FROM Contract WHERE Billing_Status__c = 'Active' AND Id IN ({ids})"  # noqa: S608
        active += org.call("GET", "query", params={"q": soql})["totalSize"]
    return active


def report(results: dict[str, Any]) -> str:
    batches = results["batches"]
    single = batches.get(1)
    rows = []
    for size, r in sorted(batches.items()):
        rows.append((f"{size}", f"{r['invocations']:,.0f}", f"{r['messages_per_second']:.1f}",
                     f"{r['messages_per_second'] / single['messages_per_second']:.2f}x" if single else "",
                     f"{r['ms_per_message']:.1f} ms ({r['without_moto_ms_per_message']:.1f} ms)",
                     f"{r['end_to_end_per_second']:.1f}",
                     f"{r['api_calls_per_message']:.2f}"))
    ceiling = 1000 / results["billing_latency_ms"]
    return (f"{results['messages']:,} contracts per batch size, billing latency {results['billing_latency_ms']:g} ms "
            f"(at most {ceiling:.0f} messages/s for one consumer calling billing once per message).\n\n"
            + table(rows, ("batch size", "invocations", "messages/s through the handler", "x single message",
                           "handler time per message (without moto's own time)",
                           "messages/s end to end (with receive/delete)", "Salesforce API calls per message")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m patterns_benchmarks.fire_and_forget")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--billing-latency-ms", type=float, default=50.0)
    args = parser.parse_args(argv)
    print(report(run(args.messages, args.billing_latency_ms)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
