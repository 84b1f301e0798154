"""The customer sync (pattern 3) at volume: N ERP customers and N Salesforce Accounts, synced both ways.

The Salesforce emulator and the ERP stand-in run as child processes, so the figures for memory are the
sync's own: this process plays the Lambda worker (moto for DynamoDB, S3 and SQS; a 15-minute Lambda
context per invocation) and drives start + every continuation until the run completes.

    python -m patterns_benchmarks.customer_sync --records 100000
    python -m patterns_benchmarks.customer_sync --records 1000000 --profile /tmp/prof   (cProfile of all three)
    python -m patterns_benchmarks customer_sync          (the registered suite: CUSTOMER_SYNC_BENCH_RECORDS,
                                                       default 100,000 each way)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from patterns_benchmarks.harness import project_dir

ROOT = project_dir()
for _path in (ROOT / "layers" / "salesforce_access", ROOT / "functions" / "customer_sync"):  # as Lambda imports
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
ERP_USER = "salesforce-sync"
RECORDS_ENV = "CUSTOMER_SYNC_BENCH_RECORDS"
DEFAULT_RECORDS = 100_000
PHASES = ("erp_to_salesforce", "salesforce_to_erp", "salesforce_deletes")


class Context:
    """A fresh Lambda invocation: 15 minutes, or less to force hand-overs (`--invocation-seconds`)."""

    function_name = "customer-sync-worker"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:customer-sync-worker"
    aws_request_id = "benchmark"

    seconds = 900.0

    def __init__(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def _spawn(args: list[str], profile: Path | None) -> tuple[subprocess.Popen, dict[str, Any]]:
    prefix = ["-m", "cProfile", "-o", str(profile)] if profile else []
    process = subprocess.Popen([sys.executable, *prefix, *args], cwd=ROOT, stdout=subprocess.PIPE,  # noqa: S603
                               text=True)
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a live child (Linux /proc), so a busy machine does not hide where work went."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _peak_rss_mb(pid: int) -> float | None:
    """The high-water mark of a child's resident memory (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _serve_erp(customers: int) -> int:
    """Child process: the ERP stand-in seeded with `customers` customers entered in the ERP."""
    import signal
    import threading

    from stand_ins.erp import ErpServer

    erp = ErpServer().start()
    with erp.app.lock:
        erp.customers.clear()
        for n in range(customers):
            erp.customers.create({"name": f"ERP Customer {n:07d}", "email": f"c{n}@erp.example",
                                  "phone": f"+44 20 {n:07d}", "active": True, "updated_by": "erp-clerk",
                                  "billing_address": {"street": f"{n} Dock Road", "city": "London",
                                                      "postal_code": "E16", "country": "GB"}})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps(erp.info), flush=True)
    stop.wait()
    erp.stop()
    return 0


def _admin(info: dict[str, Any]) -> Any:
    """Salesforce as a person (the admin user), whose Accounts the sync must carry to the ERP."""
    from salesforce_access import SalesforceAccess, Timeouts

    # The emulator answers SOQL by reading every record of the object: a COUNT() over millions takes longer
    # than the layer's default 30 s read timeout.
    return SalesforceAccess({"flow": "jwt_bearer", "client_id": info["client_id"], "username": info["admin_username"],
                             "private_key": Path(info["private_key_file"]).read_text(),
                             "login_url": info["login_url"], "api_version": info["api_version"]},
                            verify=info["ca_bundle"], unbound_budget=3600, timeouts=Timeouts(read=600))


def _seed_salesforce(info: dict[str, Any], accounts: int) -> None:
    """Accounts entered by the admin user, through Bulk API 2.0."""
    rows = ({"Name": f"SF Account {n:07d}", "Phone": f"+1 555 {n:07d}", "BillingCity": "Newark",
             "Customer_Email__c": f"a{n}@sf.example"} for n in range(accounts))
    _admin(info).bulk.ingest("Account", "insert", rows)


def _verify(info: dict[str, Any], erp_url: str, records: int) -> None:
    """Both sides hold every customer once, linked both ways (counted by the systems, not by the sync)."""
    import requests

    admin = _admin(info)
    count = admin.request("GET", "query", params={"q": "SELECT COUNT() FROM Account"})["totalSize"]
    unkeyed = admin.request("GET", "query", params={
        "q": "SELECT COUNT() FROM Account WHERE ERP_Customer_Id__c = null"})["totalSize"]
    erp = requests.get(f"{erp_url}/__control/customers/counts", timeout=600).json()
    expected = {"accounts": 2 * records, "unkeyed accounts": 0, "erp customers": 2 * records,
                "linked erp customers": 2 * records}
    found = {"accounts": count, "unkeyed accounts": unkeyed, "erp customers": erp["customers"],
             "linked erp customers": erp["linked"]}
    if found != expected:
        raise RuntimeError(f"the sides differ after the run: expected {expected}, found {found}")


def default_records() -> int:
    return int(os.environ.get(RECORDS_ENV) or DEFAULT_RECORDS)


def run(records: int | None = None, profile_dir: Path | None = None,
        invocation_seconds: float | None = None) -> dict[str, float]:
    """Sync `records` ERP customers and `records` Accounts (all new: a first, full run).

    `invocation_seconds` shortens each worker invocation (and its reserve, to a fifth of it), so the run is
    handed over between invocations many times, as it would be where Salesforce is slower than the emulator.
    """
    import logging

    from moto import mock_aws

    records = records or default_records()
    logging.disable(logging.INFO)  # the run summary is returned, not printed per step
    results: dict[str, float] = {"records_each_way": records}
    Context.seconds = invocation_seconds or 900.0
    os.environ["SYNC_TIME_RESERVE_SECONDS"] = str(min(90.0, Context.seconds / 5))
    results["invocation_seconds"] = Context.seconds
    profiles = {name: profile_dir / f"{name}.prof" for name in ("emulator", "erp", "sync")} if profile_dir else {}
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as state:
        started = time.perf_counter()
        emulator, sf_info = _spawn(["-m", "salesforce_emulator", "serve", "--port", "0", "--state-dir", state,
                                    "--daily-api-limit", "100000000"], profiles.get("emulator"))
        erp, erp_info = _spawn(["-m", "patterns_benchmarks.customer_sync", "erp-serve", "--customers", str(records)],
                               profiles.get("erp"))
        try:
            _seed_salesforce(sf_info, records)
            results["seed_seconds"] = time.perf_counter() - started
            cpu_before = {name: _cpu_seconds(p.pid) for name, p in (("emulator", emulator), ("erp", erp))}
            with mock_aws():
                results.update(_sync(sf_info, erp_info["url"], profiles.get("sync")))
            for name, process in (("emulator", emulator), ("erp", erp)):
                before, after = cpu_before[name], _cpu_seconds(process.pid)
                if before is not None and after is not None:
                    results[f"{name}_cpu_seconds"] = after - before
                peak = _peak_rss_mb(process.pid)
                if peak is not None:
                    results[f"{name}_peak_rss_mb"] = peak
            _verify(sf_info, erp_info["url"], records)
        finally:
            for process in (emulator, erp):
                process.terminate()
                process.wait(timeout=120)
    return results


def _sync(sf_info: dict[str, Any], erp_url: str, profile: Path | None) -> dict[str, float]:
    import boto3

    os.environ.update({
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
        "STATE_TABLE_NAME": "state", "SYNC_REPORT_BUCKET": "reports", "ERP_BASE_URL": erp_url,
        "SALESFORCE_CA_BUNDLE": sf_info["ca_bundle"], "SYNC_WATERMARK_LAG_SECONDS": "0",
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "Benchmark",
    })
    dynamodb, s3, sqs = (boto3.client(name) for name in ("dynamodb", "s3", "sqs"))
    dynamodb.create_table(TableName="state", AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    s3.create_bucket(Bucket="reports", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    queue = sqs.create_queue(QueueName="sync")["QueueUrl"]
    os.environ["SYNC_QUEUE_URL"] = queue
    secret = {"flow": "jwt_bearer", "client_id": sf_info["client_id"], "username": sf_info["username"],
              "private_key": Path(sf_info["private_key_file"]).read_text(), "login_url": sf_info["login_url"],
              "api_version": sf_info["api_version"]}
    os.environ["SALESFORCE_SECRET_ARN"] = boto3.client("secretsmanager").create_secret(
        Name="sf", SecretString=json.dumps(secret))["ARN"]

    from customer_sync import handler

    phase_seconds, phase_calls = _time_phases()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # the EMF metrics, still produced
            results = _drive(handler, sqs, s3, queue)
    finally:
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))
    results.update({f"{name}_seconds": seconds for name, seconds in phase_seconds.items()})
    results.update({f"{name}_api_calls": calls for name, calls in phase_calls.items()})
    return results


def _time_phases() -> tuple[dict[str, float], dict[str, int]]:
    """Wall time and Salesforce API calls per engine phase, summed over invocations (the engine itself
    reports only run totals). Calls are counted by a response hook on the layer's session, as the sync's
    own counter does."""
    from customer_sync.engine import SyncEngine

    from salesforce_access import get_access

    seconds = dict.fromkeys(PHASES, 0.0)
    calls = dict.fromkeys(PHASES, 0)
    current: list[str] = []

    def count(response: Any, *args: Any, **kwargs: Any) -> Any:
        if current and "/services/data/" in (response.request.url or ""):
            calls[current[-1]] += 1
        return response

    get_access().session.hooks.setdefault("response", []).append(count)

    def timed(name: str, method: Callable[[SyncEngine], None]) -> Callable[[SyncEngine], None]:
        def wrapper(engine: SyncEngine) -> None:
            started = time.perf_counter()
            current.append(name)
            try:
                method(engine)
            finally:
                current.pop()
                seconds[name] += time.perf_counter() - started
        return wrapper

    for name in PHASES:
        setattr(SyncEngine, name, timed(name, getattr(SyncEngine, name)))
    return seconds, calls


def boto3_client(name: str) -> Any:
    import boto3

    return boto3.client(name)


def _drive(handler: Any, sqs: Any, s3: Any, queue: str) -> dict[str, float]:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu_before = time.process_time()
    started = time.perf_counter()
    answer = handler.start({"mode": "incremental", "trigger": "benchmark"}, Context())
    invocations, longest = 0, 0.0
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1).get("Messages", [])
        if not messages:
            break
        message = messages[0]
        event = {"Records": [{"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                              "body": message["Body"], "attributes": {"ApproximateReceiveCount": "1"},
                              "messageAttributes": {}, "eventSource": "aws:sqs",
                              "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:sync", "awsRegion": "eu-west-1"}]}
        began = time.perf_counter()
        handler.work(event, Context())
        longest = max(longest, time.perf_counter() - began)
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        invocations += 1
    elapsed = time.perf_counter() - started
    try:
        summary = json.loads(s3.get_object(Bucket="reports",
                                           Key=f"customer-sync/runs/{answer['run_id']}/summary.json")["Body"].read())
    except s3.exceptions.NoSuchKey:
        from customer_sync.state import RunState, run_item_id

        item = boto3_client("dynamodb").get_item(TableName="state", Key={"id": {"S": run_item_id(answer["run_id"])}})
        run = RunState.from_json(item["Item"]["state"]["S"])
        raise RuntimeError(f"the run did not complete: {run.status}, {run.pause_reason}") from None
    if summary.get("status") != "completed" or summary["failed"]:
        raise RuntimeError(f"the run did not complete cleanly: {summary}")
    if longest > Context.seconds:  # Lambda would have killed that invocation
        raise RuntimeError(f"a worker invocation ran {longest:.0f} s, over its {Context.seconds:.0f} s")
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"wall_seconds": elapsed, "records_synced": summary["created"],
            "records_per_second": summary["created"] / elapsed, "worker_invocations": invocations,
            "longest_invocation_seconds": longest,
            "api_calls": summary["api_calls"], "peak_rss_mb": rss_after / 1024,
            "rss_growth_mb": (rss_after - rss_before) / 1024, "sync_cpu_seconds": time.process_time() - cpu_before}


def report(results: dict[str, float]) -> str:
    lines = [
        "| measurement | figure |",
        "|---|---|",
        f"| records synced (new ERP customers -> Accounts + new Accounts -> ERP) | {results['records_synced']:,.0f} "
        f"({results['records_each_way']:,.0f} each way) |",
        f"| wall time, first (full) run | {results['wall_seconds']:.1f} s |",
        f"| records per second | {results['records_per_second']:,.0f} |",
        "| wall time per phase: ERP -> Salesforce / Salesforce -> ERP / deletions | "
        + " / ".join(f"{results.get(f'{name}_seconds', 0):.1f} s" for name in PHASES) + " |",
        "| records per second, ERP -> Salesforce / Salesforce -> ERP | "
        + " / ".join(f"{results['records_each_way'] / max(results.get(f'{name}_seconds', 0), 1e-9):,.0f}"
                     for name in PHASES[:2]) + " |",
        f"| worker invocations ({results.get('invocation_seconds', 900):.0f} s budget each) / the longest | "
        f"{results['worker_invocations']:.0f} / {results.get('longest_invocation_seconds', 0):.1f} s |",
        f"| Salesforce API calls used (ERP -> Salesforce / Salesforce -> ERP / deletions) | "
        f"{results['api_calls']:,.0f} ("
        + " / ".join(f"{results.get(f'{name}_api_calls', 0):,.0f}" for name in PHASES) + ") |",
        f"| peak RSS of the sync process / growth during the run | {results['peak_rss_mb']:.0f} MB / "
        f"{results['rss_growth_mb']:.0f} MB |",
    ]
    if "emulator_peak_rss_mb" in results:
        lines.append(f"| peak RSS of the Salesforce emulator / ERP stand-in | "
                     f"{results['emulator_peak_rss_mb']:,.0f} MB / {results.get('erp_peak_rss_mb', 0):,.0f} MB |")
    if "emulator_cpu_seconds" in results:
        lines.append(f"| CPU time: sync / Salesforce emulator / ERP stand-in | {results['sync_cpu_seconds']:.1f} s / "
                     f"{results['emulator_cpu_seconds']:.1f} s / {results.get('erp_cpu_seconds', 0):.1f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m patterns_benchmarks.customer_sync")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("erp-serve", help="(internal) the seeded ERP stand-in child process")
    serve.add_argument("--customers", type=int, required=True)
    parser.add_argument("--records", type=int, default=None,
                        help=f"records each way (default: ${RECORDS_ENV} or {DEFAULT_RECORDS:,})")
    parser.add_argument("--invocation-seconds", type=float, default=None,
                        help="each worker invocation's time (default 900); shorter forces hand-overs")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write cProfile stats of the sync, the emulator and the ERP into this folder")
    args = parser.parse_args(argv)
    if args.command == "erp-serve":
        return _serve_erp(args.customers)
    print(report(run(args.records, args.profile, args.invocation_seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
