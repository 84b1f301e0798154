"""`make demo` (python -m local demo): the whole scenario as a new user runs it, a pattern that fails, Ctrl-C.

The demo checks every effect itself; these tests hold it to its exit code, its JSON report (what each
pattern produced, read back from the systems), its clean-up and its silence about secrets.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from patterns_demo.cli import parse_only, run
from patterns_demo.story import describe_calls, salesforce_calls

ROOT = Path(__file__).resolve().parents[3]
PATTERNS = ["Request and Reply", "Fire and Forget", "Batch Data Synchronization", "Remote Call-In",
            "UI Update Based on Data Changes"]
# What must never reach the terminal: emulator access tokens (org id prefix and "!"), keys, bearer headers.
SECRETS = re.compile(r"00D[0-9A-Za-z]{12}!|BEGIN [A-Z ]*PRIVATE KEY|Bearer |x-api-key: \S|client_secret")


def _demo(*args: str, tmp: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmp)}
    env.pop("NO_COLOR", None)
    return subprocess.run([sys.executable, "-m", "local", "demo", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


@pytest.mark.slow
def test_the_demo_runs_all_five_patterns_and_proves_each_effect(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    report_file = tmp_path / "report.json"
    done = _demo("--report", str(report_file), tmp=tmp)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout
    report = json.loads(report_file.read_text())

    assert report["ok"] is True
    assert report["patterns"] == [1, 2, 3, 4, 5]
    by_pattern = Counter(c["pattern"] for c in report["checks"])
    assert set(by_pattern) == set(PATTERNS)
    assert all(n >= 5 for n in by_pattern.values()), by_pattern
    assert all(c["ok"] for c in report["checks"])
    for number, name in enumerate(PATTERNS, 1):
        assert f"[{number}/5] {name}" in out
    assert "All five patterns did what they claim" in out
    assert "\033[" not in out  # no colour when stdout is not a terminal

    facts = report["facts"]
    reply = facts["request_reply"]
    assert reply["get"]["sku"] == "SKU-1001"
    assert reply["get"]["available"] is True
    assert [r["available"] for r in reply["post"]["results"]] == [True, False]
    billing = facts["fire_and_forget"]
    assert re.fullmatch(r"BA-\d{6}", billing["billing_account"])
    sync = facts["batch_sync"]
    assert sync["summary"]["status"] == "completed"
    assert sync["summary"]["failed"] == 0
    assert sync["erp_customers_entered_over_http"] == 250  # through the ERP's public POST /customers
    assert sync["to_salesforce"] >= 250  # the demo's volumes, plus the ERP's seed customers
    assert sync["to_erp"] >= 150  # ... plus the Account of pattern 2
    assert sync["summary"]["created"] == sync["to_salesforce"] + sync["to_erp"]
    assert sync["second_run"].get("created", 0) == 0
    order = facts["remote_call_in"]
    assert order["replay"] == "unchanged"
    assert order["api_calls_replay"] == 0
    assert len(order["salesforce"]["order_item_ids"]) == 2
    ui = facts["ui_update"]
    assert ui["ui_received"][-1] == "Delivered"
    assert ui["shipment"]["Status__c"] == "Delivered"
    assert ui["shipment"]["Order__c"] == order["salesforce"]["order_id"]
    # Six deliveries; which late one is ignored depends on the order the asynchronous invocations run in.
    results = ui["publisher_results"]
    assert len(results) == ui["sent"] == 6
    assert results.count("published") == len(ui["ui_received"])
    assert set(results) - {"published"} <= {"stale", "duplicate"}
    assert results.count("published") <= 5

    assert not SECRETS.search(out + done.stderr)
    assert list(tmp.iterdir()) == []  # the demo's temporary directory (emulator keys, env file) is gone


def test_a_pattern_that_does_not_do_what_it_claims_fails_the_demo(tmp_path):
    """Billing refuses every account: the Contract is marked Failed, and the demo says so and exits 1."""
    out = io.StringIO()
    report_file = tmp_path / "report.json"
    args = argparse.Namespace(only="2", verbose=False, report=str(report_file), no_color=True)

    def break_billing(stack) -> None:
        stack.services.stand_ins["billing"].server.inject("422", count=5)

    code = run(args, out=out, on_ready=break_billing)
    text = out.getvalue()
    assert code == 1, text
    assert "FAILED:" in text
    assert "Fire and Forget: the Contract shows the billing account number and status Active" in text
    assert "Last log lines of BillingConsumerFunction" in text
    report = json.loads(report_file.read_text())
    assert report["ok"] is False
    failed = [c["label"] for c in report["checks"] if not c["ok"]]
    assert "billing opened exactly one account, even after the duplicate" in failed
    assert {c["pattern"] for c in report["checks"]} == {"Fire and Forget"}


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from /proc (Linux)")
def test_ctrl_c_stops_the_stack_and_removes_what_the_demo_made(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}

    def own_group() -> None:  # as a terminal runs it: SIGINT goes to the whole foreground process group
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setpgrp()

    process = subprocess.Popen([sys.executable, "-m", "local", "demo", "--no-color"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               preexec_fn=own_group)
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    for line in process.stdout:
        seen.append(line)
        if line.startswith("[2/5]") or time.monotonic() > deadline:
            break
    children = _children(process.pid)
    assert children, "the functions run in their own processes"
    os.killpg(process.pid, signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 130, "".join(seen) + rest
    assert "Interrupted: stopping the local stack and cleaning up." in rest
    time.sleep(0.5)
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []  # pids are not reused this fast
    assert list(tmp.iterdir()) == []


def test_only_takes_pattern_numbers():
    assert parse_only(None) == [1, 2, 3, 4, 5]
    assert parse_only("5,4") == [4, 5]
    for bad in ("0", "6", "two", ","):
        with pytest.raises(ValueError, match="--only"):
            parse_only(bad)
    err = io.StringIO()
    code = run(argparse.Namespace(only="9", verbose=False, report=None, no_color=True), out=err)
    assert code == 2


def test_salesforce_calls_are_counted_by_kind_from_the_emulators_log():
    log = [{"method": "POST", "path": "/services/oauth2/token"},
           {"method": "GET", "path": "/services/data/v62.0/query"},
           {"method": "POST", "path": "/services/data/v62.0/composite"},
           {"method": "PATCH", "path": "/services/data/v62.0/sobjects/Contract/8000X0000000009QAA"},
           {"method": "PATCH", "path": "/services/data/v62.0/sobjects/Contract/8000X000000000AQAA"},
           {"method": "PATCH", "path": "/services/data/v62.0/sobjects/Account/ERP_Customer_Id__c/C-000001"},
           {"method": "POST", "path": "/cometd/62.0"}]
    calls, tokens, streaming = salesforce_calls(log)
    assert calls == Counter({"GET query": 1, "POST composite": 1, "PATCH sobjects/Contract/{id}": 2,
                             "PATCH sobjects/Account/ERP_Customer_Id__c/{key}": 1})
    assert (tokens, streaming) == (1, 1)
    assert describe_calls(calls).startswith("5 (")
    assert describe_calls(Counter()) == "none"
