"""`python -m local`: invoke (stdout is the result, stderr the logs, the exit code the outcome), up, fire."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from .conftest import FIXTURE_TEMPLATE, HERE, ROOT, ProbeLog
from .test_runtime import _running


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "local", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_invoke_prints_the_result_on_stdout_and_logs_on_stderr():
    done = _run("invoke", "AvailabilityFunction", "-e", "events/availability-get-one.json")
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["statusCode"] == 200
    assert json.loads(reply["body"])["sku"] == "SKU-1001"
    assert "[AvailabilityFunction]" in done.stderr
    assert "cold start" in done.stderr


def test_invoke_exits_non_zero_on_a_function_error(tmp_path):
    event = tmp_path / "fail.json"
    event.write_text('{"action": "fail"}')
    env_file = tmp_path / "vars.json"
    env_file.write_text(json.dumps({"ProbeFunction": {"PROBE_LOG": str(tmp_path / "log.jsonl")}}))
    done = _run("invoke", "ProbeFunction", "-e", str(event), "--template", str(FIXTURE_TEMPLATE),
                "--env-file", str(env_file))
    assert done.returncode == 1
    assert json.loads(done.stdout)["errorType"] == "ValueError"
    assert (tmp_path / "log.jsonl").exists()  # the SAM-style env file reached the function


def test_invoke_names_the_functions_when_one_is_unknown():
    done = _run("invoke", "NoSuchFunction", "--template", str(FIXTURE_TEMPLATE))
    assert done.returncode == 2
    assert "no function 'NoSuchFunction'" in done.stderr
    assert "ProbeFunction" in done.stderr


def test_up_serves_fires_and_stops_on_ctrl_c(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "local", "up", "--port", "0", "--json", "--template",
                                str(FIXTURE_TEMPLATE)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        summary = json.loads(process.stdout.readline())
        assert summary["api_key"]
        assert "NightlySchedule" in summary["schedules"]
        response = requests.get(f"{summary['api_url']}/open/7", timeout=30)
        assert response.status_code == 200
        assert response.json()["pathParameters"] == {"id": "7"}
        fired = _run("fire", "NightlySchedule", "--url", summary["api_url"])
        assert fired.returncode == 0, fired.stderr
        assert json.loads(fired.stdout)["ok"] is True
        assert json.loads(fired.stdout)["outcome"] == {"idle": True}  # it waited for what the schedule started
        missing = _run("fire", "Nope", "--url", summary["api_url"])
        assert missing.returncode == 1
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 0


def test_ctrl_c_with_a_function_busy_stops_everything_at_once_and_quietly(tmp_path: Path):
    probe_log = ProbeLog(tmp_path / "probe.jsonl")
    env_file = tmp_path / "probe.env"
    env_file.write_text(f"PROBE_LOG={probe_log.path}\n")
    # Its own process group, as a terminal runs `make local`: Ctrl-C sends SIGINT to every process in it.
    process = subprocess.Popen([sys.executable, "-m", "local", "up", "--port", "0", "--json", "--template",
                                str(HERE / "fixture" / "busy-template.yaml"), "--env-file", str(env_file)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        assert process.stdout is not None
        summary = json.loads(process.stdout.readline())
        replies: list = []

        def call() -> None:
            try:
                replies.append(requests.post(f"{summary['api_url']}/slow", json={"seconds": 30}, timeout=60))
            except requests.RequestException as exc:
                replies.append(exc)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        [busy] = probe_log.wait_for(lambda entries: len(entries) == 1)  # the function is sleeping now
        assert _running(busy["pid"])

        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        stopped_in = time.monotonic() - started
        caller.join(10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert process.returncode == 0
    assert stopped_in < 5  # the function had 30 s of sleep left
    assert not _running(busy["pid"])
    assert "KeyboardInterrupt" not in stderr
    assert "Traceback" not in stderr
    assert replies[0].status_code == 502  # the caller got an answer, not a hang


def test_sign_prints_the_signature_headers_of_a_sample_event_with_a_given_key(monkeypatch):
    done = _run("sign", "orders", "--key", "k" * 32, "--api-key", "given", "--url", "http://127.0.0.1:1",
                "--body", "events/orders-post.json", "-o", "headers")
    assert done.returncode == 0, done.stderr
    headers = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert set(headers) == {"X-Signature-Timestamp", "X-Signature"}
    monkeypatch.syspath_prepend(str(ROOT / "layers" / "salesforce_access"))
    from edge_kit.signatures import verify

    body = json.loads((ROOT / "events" / "orders-post.json").read_text())["body"].encode()
    verify(headers, body, ["k" * 32])  # the edge kit accepts what `sign` printed
