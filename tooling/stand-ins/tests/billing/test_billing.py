"""The billing stand-in keeps its HTTP contract (stand_ins/billing/README.md): accounts, idempotency keys,
validation, faults, latency, the request log, stop/start and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from stand_ins.billing import BillingServer

CWD = Path(tempfile.gettempdir())  # outside the source tree: the installed package is what runs
CONTRACT = "800000000000001AAA"
ACCOUNT = "001000000000001AAA"
BODY = {"contract_id": CONTRACT, "account_id": ACCOUNT, "signed_on": "2025-03-01"}


@pytest.fixture(scope="module")
def server() -> Iterator[BillingServer]:
    with BillingServer() as billing:
        yield billing


@pytest.fixture
def billing(server: BillingServer) -> BillingServer:
    server.reset()
    return server


def post(billing: BillingServer, body: object, key: str | None = None, timeout: float = 2) -> requests.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return requests.post(f"{billing.url}/billing-accounts", json=body, headers=headers, timeout=timeout)


def test_open_account_returns_a_numbered_account(billing):
    response = post(billing, BODY, key="k-1")
    assert response.status_code == 201
    account = response.json()
    assert account["account_number"] == "BA-000001"
    assert account["contract_id"] == CONTRACT
    assert account["status"] == "active"
    assert response.headers["Location"] == "/billing-accounts/BA-000001"
    assert requests.get(f"{billing.url}/billing-accounts/BA-000001", timeout=2).json() == account
    assert post(billing, {**BODY, "contract_id": "800000000000002AAA"}).json()["account_number"] == "BA-000002"


def test_same_idempotency_key_replays_the_first_account(billing):
    first = post(billing, BODY, key="contract-1").json()
    replay = post(billing, BODY, key="contract-1")
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first
    assert len(billing.accounts(contract_id=CONTRACT)) == 1


def test_without_a_key_every_post_opens_an_account(billing):
    # The stand-in does not de-duplicate by contract: a caller that retries without a key gets duplicates,
    # which is what the consumer's tests must be able to see.
    post(billing, BODY)
    post(billing, BODY)
    assert [a["account_number"] for a in billing.accounts(contract_id=CONTRACT)] == ["BA-000001", "BA-000002"]


def test_key_reused_with_another_body_is_refused(billing):
    post(billing, BODY, key="k")
    response = post(billing, {**BODY, "account_id": "001000000000009AAA"}, key="k")
    assert response.status_code == 422
    assert response.json()["error"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"account_id": ACCOUNT}, "contract_id"),
        ({**BODY, "contract_id": "800-short"}, "contract_id"),
        ({**BODY, "account_id": 12}, "account_id"),
        ({**BODY, "signed_on": "01/03/2025"}, "signed_on"),
        ({**BODY, "currency": "euro"}, "currency"),
    ],
)
def test_invalid_bodies_get_a_400_naming_the_field(billing, body, field):
    response = post(billing, body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["field"] == field
    assert billing.accounts() == []


def test_non_json_body_is_a_400(billing):
    response = requests.post(f"{billing.url}/billing-accounts", data=b"{not json", timeout=2)
    assert response.status_code == 400
    assert "JSON" in response.json()["message"]


def test_blocked_customer_is_refused_with_422(billing):
    requests.post(f"{billing.url}/__control/blocked-accounts", json={"account_id": ACCOUNT}, timeout=2)
    response = post(billing, BODY, key="k")
    assert response.status_code == 422
    assert response.json()["error"] == "account_blocked"
    assert billing.accounts() == []


def test_list_by_contract_and_unknown_account(billing):
    post(billing, BODY)
    items = requests.get(f"{billing.url}/billing-accounts", params={"contract_id": CONTRACT}, timeout=2).json()
    assert [i["contract_id"] for i in items["items"]] == [CONTRACT]
    other = requests.get(f"{billing.url}/billing-accounts", params={"contract_id": "800000000000009AAA"}, timeout=2)
    assert other.json() == {"items": []}
    missing = requests.get(f"{billing.url}/billing-accounts/BA-999999", timeout=2)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert requests.delete(f"{billing.url}/billing-accounts", timeout=2).status_code == 405


@pytest.mark.parametrize("status", [400, 409, 422, 429, 500, 502, 503, 504])
def test_status_faults_answer_json_and_write_nothing(billing, status):
    billing.inject(str(status), count=1, method="POST", path="^/billing-accounts$")
    response = post(billing, BODY, key="k")
    assert response.status_code == status
    assert response.json()["error"] == "injected_fault"
    assert ("Retry-After" in response.headers) == (status in (429, 503))
    assert billing.accounts() == []
    assert post(billing, BODY, key="k").status_code == 201  # count=1: the next call is served


def test_faults_over_http_with_count_and_path(billing):
    created = requests.post(f"{billing.url}/__control/faults", json={"kind": "503", "count": 2, "path": "^/health$"},
                            timeout=2)
    assert created.status_code == 201
    assert [requests.get(f"{billing.url}/health", timeout=2).status_code for _ in range(3)] == [503, 503, 200]
    assert post(billing, BODY).status_code == 201  # other paths unaffected
    bad = requests.post(f"{billing.url}/__control/faults", json={"kind": "teapot"}, timeout=2)
    assert bad.status_code == 400
    assert bad.json()["field"] == "kind"


def test_down_drops_the_connection_without_writing(billing):
    billing.inject("down")
    with pytest.raises(requests.ConnectionError):
        post(billing, BODY, key="k")
    assert billing.accounts() == []


def test_timeout_holds_the_request_past_the_client_timeout(billing):
    billing.inject("timeout", delay_seconds=2)
    with pytest.raises(requests.ReadTimeout):
        post(billing, BODY, key="k", timeout=0.3)
    assert billing.accounts() == []


def test_lost_response_writes_but_never_answers(billing):
    # The case an Idempotency-Key exists for: the account is open, the caller saw only a dropped connection.
    billing.inject("lost_response")
    with pytest.raises(requests.ConnectionError):
        post(billing, BODY, key="contract-1")
    assert len(billing.accounts()) == 1
    retry = post(billing, BODY, key="contract-1")
    assert retry.status_code == 200
    assert len(billing.accounts()) == 1


def test_latency_and_delay(billing):
    billing.set_latency(0.2)
    started = time.monotonic()
    assert post(billing, BODY).status_code == 201
    assert time.monotonic() - started >= 0.2
    billing.set_latency(0)
    billing.inject("delay", delay_seconds=0.2)
    started = time.monotonic()
    assert requests.get(f"{billing.url}/health", timeout=2).status_code == 200
    assert time.monotonic() - started >= 0.2
    assert requests.post(f"{billing.url}/__control/latency", json={"seconds": -1}, timeout=2).status_code == 400


def test_request_log_records_calls_not_control(billing):
    billing.inject("503")
    post(billing, BODY, key="k")
    post(billing, BODY, key="k")
    log = requests.get(f"{billing.url}/__control/requests", timeout=2).json()["requests"]
    assert [(r["method"], r["path"], r["status"], r["fault"]) for r in log] == [
        ("POST", "/billing-accounts", 503, "503"), ("POST", "/billing-accounts", 201, None)]
    assert log[0]["headers"]["idempotency-key"] == "k"
    assert log[0]["body"] == BODY
    requests.delete(f"{billing.url}/__control/requests", timeout=2)
    assert billing.requests() == []


def test_request_log_keeps_no_authorization_header(billing):
    requests.get(f"{billing.url}/health", headers={"Authorization": "Bearer s3cr3t"}, timeout=2)
    assert "s3cr3t" not in json.dumps(billing.requests())


def test_stop_refuses_connections_and_start_keeps_state():
    billing = BillingServer().start()
    try:
        number = post(billing, BODY, key="k").json()["account_number"]
        port = billing.port
        billing.stop()
        with pytest.raises(requests.ConnectionError):
            post(billing, BODY, key="k")
        billing.start()
        assert billing.port == port
        assert post(billing, BODY, key="k").json()["account_number"] == number
    finally:
        billing.stop()


def test_python_api_rejects_unknown_fault_kind(billing):
    with pytest.raises(ValueError, match="kind must be one of"):
        billing.inject("teapot")


def test_command_line_prints_its_url_and_serves():
    process = subprocess.Popen([sys.executable, "-m", "stand_ins.billing", "serve", "--port", "0"], cwd=CWD,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert info["url"].startswith("http://127.0.0.1:")
        assert info["control_url"] == info["url"] + "/__control"
        assert requests.get(f"{info['url']}/health", timeout=5).json() == {"status": "ok"}
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
