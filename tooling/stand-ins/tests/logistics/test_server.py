"""The carrier's HTTP API and command line, as README.md documents them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from stand_ins.logistics import JOURNEY

from .conftest import SIGNING_KEY

CWD = Path(tempfile.gettempdir())  # outside the source tree: the installed package is what runs


def test_a_journey_started_over_http_is_delivered_in_the_order_asked(carrier, bus):
    response = requests.post(f"{carrier.url}/shipments", timeout=10, json={
        "tracking_number": "1ZHTTP", "order": "reverse", "start": "2025-03-02T08:00:00Z", "step_minutes": 60,
        "order_number": "WEB-7"})

    assert response.status_code == 200
    body = response.json()
    assert [e["status"] for e in body["events"]] == ["Delivered", "Out for Delivery", "In Transit", "Picked Up",
                                                    "Label Created"]
    assert [d["status"] for d in body["deliveries"]] == [202] * 5
    assert [e["detail"]["status"] for e in bus.received()] == [e["status"] for e in body["events"]]
    assert len(requests.get(f"{carrier.url}/deliveries", timeout=5).json()["items"]) == 5


def test_a_journey_can_run_in_the_background(carrier, bus):
    response = requests.post(f"{carrier.url}/shipments", timeout=10, json={
        "tracking_number": "1ZBG", "wait": False, "interval_seconds": 0.01, "statuses": ["Picked Up", "Delivered"]})
    assert response.status_code == 202
    carrier.wait_idle()
    assert [d["statuses"] for d in carrier.deliveries()] == [["Picked Up"], ["Delivered"]]


def test_faults_are_set_listed_and_cleared_over_http(carrier, bus):
    base = f"{carrier.url}/__control/faults"
    assert requests.post(base, json={"kind": "stale_timestamp", "count": 2}, timeout=5).status_code == 201
    assert requests.get(base, timeout=5).json()["items"] == [{"kind": "stale_timestamp", "count": 2}]
    assert requests.post(base, json={"kind": "nope"}, timeout=5).status_code == 400
    assert requests.delete(base, timeout=5).status_code == 204
    assert requests.get(base, timeout=5).json()["items"] == []


@pytest.mark.parametrize("body", [
    {}, {"tracking_number": "has space"}, {"tracking_number": "1Z", "order": "sideways"},
    {"tracking_number": "1Z", "interval_seconds": -1}, {"tracking_number": "1Z", "statuses": []},
    {"tracking_number": "1Z", "start": "yesterday"}, {"tracking_number": "1Z", "start": "2025-03-02T08:00:00"},
])
def test_a_bad_journey_request_is_a_json_400(carrier, body):
    response = requests.post(f"{carrier.url}/shipments", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_unknown_routes_methods_and_bodies(carrier):
    assert requests.get(f"{carrier.url}/nope", timeout=5).status_code == 404
    assert requests.delete(f"{carrier.url}/shipments", timeout=5).status_code == 405
    assert requests.post(f"{carrier.url}/shipments", data=b"{", timeout=5).json()["error"] == "invalid_json"
    log = requests.get(f"{carrier.url}/__control/requests", timeout=5).json()["items"]
    assert [(r["method"], r["status"]) for r in log] == [("GET", 404), ("DELETE", 405), ("POST", 400)]


def _env() -> dict[str, str]:
    return {**os.environ, "LOGISTICS_SIGNING_KEY": SIGNING_KEY}


def test_serve_prints_one_json_line_when_ready_and_stops_on_sigterm():
    process = subprocess.Popen([sys.executable, "-m", "stand_ins.logistics", "serve", "--webhook-url",
                                "http://127.0.0.1:9/shipments/events"], cwd=CWD, env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(process.stdout.readline())
        assert requests.get(f"{info['url']}/health", timeout=5).json() == {"status": "ok", "sink": "webhook"}
        assert info["control_url"] == f"{info['url']}/__control"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    assert SIGNING_KEY not in process.stdout.read() + process.stderr.read()


def test_serve_without_the_key_explains_what_is_missing():
    env = {k: v for k, v in _env().items() if k != "LOGISTICS_SIGNING_KEY"}
    result = subprocess.run([sys.executable, "-m", "stand_ins.logistics", "serve", "--webhook-url", "http://x"],
                            cwd=CWD, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert "LOGISTICS_SIGNING_KEY" in result.stderr


def test_send_delivers_one_journey_and_prints_each_delivery(gateway, bus):
    result = subprocess.run([sys.executable, "-m", "stand_ins.logistics", "send", "--webhook-url",
                             f"{gateway.url}/shipments/events", "--tracking-number", "1ZCLI", "--order", "shuffle",
                             "--seed", "3"], cwd=CWD, env=_env(), capture_output=True, text=True, timeout=60,
                            check=False)

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["status"] for line in lines] == [202] * 5
    sent = [line["statuses"][0] for line in lines]
    assert sorted(sent) == sorted(JOURNEY)
    assert sent != list(JOURNEY)  # shuffled
    assert [e["detail"]["status"] for e in bus.received()] == sent
