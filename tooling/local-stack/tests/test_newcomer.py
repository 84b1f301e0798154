"""What a newcomer needs from `python -m local up` on template.yaml (issue 16): the stack seeded so the README's
order example is written (not 422), every local key and login printed, `sign` producing requests the signed
routes accept, and `fire` waiting for the customer sync's run and reporting how it ended."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from local.outcome import follow
from local.seed import catalogue, local_credentials, seed_stack
from local.signing import ROUTES, edge_kit_signatures, signed_request
from local.stack import LocalStack
from local.stack.runtime import InvocationResult, collecting_sink

from .conftest import ROOT


@pytest.fixture(scope="module")
def stack():
    lines: list = []
    with LocalStack(log_sink=collecting_sink(lines), retry_delays=(0.2,)) as s:
        s.lines = lines
        yield s


def _post(stack: Any, route: str) -> requests.Response:
    request = signed_request(ROUTES[route], ROOT, local_credentials(stack), body_file=None, key=None, api_key=None,
                             url=stack.api_url)
    return requests.post(request.url, data=request.body, headers=request.headers, timeout=60)


def test_the_readme_order_is_refused_unseeded_and_written_once_seeded(stack):
    empty = _post(stack, "orders")
    assert empty.status_code == 422  # what `make local` answered before it seeded: no products
    assert seed_stack(stack)["created"] == sorted(catalogue())
    assert seed_stack(stack)["created"] == []  # seeding twice creates nothing twice
    written = _post(stack, "orders")
    assert written.status_code == 201, written.text
    assert written.json()["status"] == "created"
    assert _post(stack, "orders-async").status_code == 202


def test_sign_signs_the_webhook_sample_with_the_logistics_key(stack):
    answer = _post(stack, "webhook")
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 2


def test_sign_uses_the_edge_kits_contract_and_a_given_key():
    request = signed_request(ROUTES["orders"], ROOT, {}, body_file=str(ROOT / "events" / "orders-post.json"),
                             key="k" * 32, api_key="given", url="http://127.0.0.1:3000")
    sample = json.loads((ROOT / "events" / "orders-post.json").read_text())
    assert request.body == sample["body"].encode()  # the sample event's body, byte for byte
    edge_kit_signatures(ROOT).verify(request.headers, request.body, ["k" * 32])
    assert request.headers["x-api-key"] == "given"
    curl = request.render("curl")
    assert curl.startswith("curl -sS -X POST http://127.0.0.1:3000/orders ")
    assert f"--data-binary @{request.body_file}" in curl
    assert request.body_file.read_bytes() == request.body
    assert request.render("headers").splitlines()[0].startswith("X-Signature-Timestamp: ")


def test_every_local_credential_is_reported(stack):
    found = local_credentials(stack)
    info = stack.services.emulator.info
    assert found["api_key"]["value"] == stack.api_key
    assert found["order_signing_key"] == json.loads(stack.secret_value("OrderSigningSecret"))["current"]
    assert found["logistics_signing_key"] == stack.services.values["logistics"]["signing_key"]
    assert found["erp_api_key"] == stack.services.values["erp"]["api_key"]
    sf = found["salesforce"]
    assert (sf["instance_url"], sf["ca_bundle"], sf["client_id"], sf["client_secret"]) == \
        (info["instance_url"], info["ca_bundle"], info["client_id"], info["client_secret"])
    assert sf["admin"] == {"username": info["admin_username"], "password": info["admin_password"]}
    assert any("/orders" in route for route in found["api_key"]["routes"])


def test_fire_waits_for_the_sync_run_and_reports_its_summary(stack):
    result = stack.fire_schedule("CustomerSyncSchedule")
    followed = follow(stack, result, timeout=120)
    assert followed["ok"] is True, followed
    outcome = followed["outcome"]
    assert outcome["status"] == "completed"
    assert outcome["idle"] is True
    assert outcome["summary"]["run_id"] == followed["result"]["run_id"]
    assert outcome["summary"]["failed"] == 0


class _PausedRun:
    """A stack whose run paused: only what follow() reads."""

    def __init__(self) -> None:
        self.model = SimpleNamespace(resources={"StateTable": 1}, values=SimpleNamespace(ref=lambda _: "table"))

    def client(self, service: str) -> Any:
        state = {"status": "paused", "pause_reason": "ErpUnavailable: 503", "counters": {"read": 3}}
        return SimpleNamespace(get_item=lambda **_: {"Item": {"state": {"S": json.dumps(state)}}})

    def wait_idle(self, timeout: float) -> bool:
        return True


def test_fire_fails_when_the_run_paused_or_the_function_failed():
    started = InvocationResult("r1", payload={"status": "started", "run_id": "run-1"})
    paused = follow(_PausedRun(), started, timeout=5)
    assert paused["ok"] is False
    assert paused["outcome"]["status"] == "paused"
    assert paused["outcome"]["pause_reason"] == "ErpUnavailable: 503"
    failed = follow(_PausedRun(), InvocationResult("r2", error={"errorType": "ValueError"}), timeout=5)
    assert failed["ok"] is False


def test_up_seeds_and_prints_every_local_credential_labelled_local_only():
    process = subprocess.Popen([sys.executable, "-m", "local", "up", "--port", "0"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    banner: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            banner.append(line)
            if "python -m local sign" in line:
                break
        text = "".join(banner)
        api_url = next(line.split()[1] for line in banner if line.strip().startswith("API "))
        status = requests.get(f"{api_url}/__local/credentials", timeout=30).json()
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    assert "LOCAL-ONLY credentials" in text
    assert "SKU-1001" in text.split("Seeded", 1)[1]
    for value in (status["api_key"]["value"], status["order_signing_key"], status["logistics_signing_key"],
                  status["erp_api_key"], status["salesforce"]["client_id"], status["salesforce"]["client_secret"],
                  status["salesforce"]["admin"]["password"], status["salesforce"]["ca_bundle"]):
        assert value in text
