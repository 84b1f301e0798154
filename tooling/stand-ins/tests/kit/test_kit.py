"""The shared kit on its own: a minimal stand-in built from it, driven over real HTTP."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator

import pytest
import requests

from stand_ins.kit import (
    Action,
    Envelope,
    FaultKind,
    Faults,
    HttpError,
    InvalidFault,
    Reply,
    Request,
    StandInApp,
    StandInService,
    control,
)

KINDS = (FaultKind("418", Action.REPLY, lambda: Reply(418, {"error": "teapot", "message": "short and stout"})),
         FaultKind("drop", Action.DROP), FaultKind("unread", Action.DROP_UNREAD),
         FaultKind("lost", Action.LOST_RESPONSE), FaultKind("hold", Action.HOLD, default_delay=0.05),
         FaultKind("slow", Action.DELAY, needs_delay=True), FaultKind("down", Action.REPLY,
                                                                     lambda: Reply(503), until_cleared=True))


class Counter(StandInService):
    """A stand-in with one piece of state, to see what a fault lets through."""

    def __init__(self, envelope: Envelope | None = None, lists=control.bare):
        app = StandInApp("counter", envelope=envelope, max_body=1024,
                         faults=Faults(KINDS, allow_until_cleared=True, count_key="remaining"))
        super().__init__(app)
        self.hits = 0

        def bump(req: Request) -> Reply:
            body = req.json_object(empty={})
            if "by" in body and not isinstance(body["by"], int):
                raise HttpError(400, "invalid_request", "by must be an integer", field="by")
            with app.lock:
                self.hits += body.get("by", 1)
            return Reply(201, {"hits": self.hits})

        app.router.add("POST", "/counters/{name}", bump)
        app.router.add("GET", "/counters/{name}", lambda req: Reply(200, {"name": req.params["name"],
                                                                           "hits": self.hits}))
        app.router.add("GET", "/boom", lambda req: 1 / 0)
        control.register(app, reset=self.reset, lists=lists)

    def reset(self) -> None:
        self.hits = 0
        assert self.app.faults is not None
        self.app.faults.clear()
        self.app.request_log.clear()


@pytest.fixture
def counter() -> Iterator[Counter]:
    with Counter() as server:
        yield server


def test_routes_path_parameters_and_the_envelope(counter: Counter) -> None:
    assert requests.post(f"{counter.url}/counters/a", json={"by": 2}, timeout=5).json() == {"hits": 2}
    assert requests.get(f"{counter.url}/counters/a", timeout=5).json() == {"name": "a", "hits": 2}
    assert requests.get(f"{counter.url}/nothing", timeout=5).json()["error"] == "not_found"
    assert requests.delete(f"{counter.url}/counters/a", timeout=5).status_code == 405
    bad = requests.post(f"{counter.url}/counters/a", json={"by": "x"}, timeout=5)
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid_request", "message": "by must be an integer",
                                                   "field": "by"})
    assert requests.post(f"{counter.url}/counters/a", data=b"{", timeout=5).json()["error"] == "invalid_json"


def test_a_stand_in_bug_is_an_opaque_json_500(counter: Counter, capsys: pytest.CaptureFixture[str]) -> None:
    response = requests.get(f"{counter.url}/boom", timeout=5)
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "ZeroDivisionError" not in response.text
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_an_envelope_renames_and_upper_cases_the_kits_codes() -> None:
    with Counter(Envelope(key="code", upper=True)) as erp_like:
        assert requests.get(f"{erp_like.url}/nothing", timeout=5).json()["code"] == "NOT_FOUND"
    with Counter(Envelope(renames={"invalid_json": "invalid_request"})) as billing_like:
        refused = requests.post(f"{billing_like.url}/counters/a", data=b"[", timeout=5)
        assert refused.json()["error"] == "invalid_request"


def test_a_reply_fault_answers_instead_of_the_route_and_counts_down(counter: Counter) -> None:
    counter.app.faults.add("418", 2, method="POST", path="^/counters/")
    assert requests.get(f"{counter.url}/counters/a", timeout=5).status_code == 200  # another method
    assert [requests.post(f"{counter.url}/counters/a", timeout=5).status_code for _ in range(3)] == [418, 418, 201]
    assert counter.hits == 1


def test_drop_unread_is_a_connection_error_and_not_logged(counter: Counter) -> None:
    counter.app.faults.add("unread")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{counter.url}/counters/a", json={}, timeout=5)
    assert counter.hits == 0
    assert counter.app.request_log.entries() == []


def test_lost_response_writes_then_drops(counter: Counter) -> None:
    counter.app.faults.add("lost")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{counter.url}/counters/a", timeout=5)
    assert counter.hits == 1
    [entry] = counter.app.request_log.entries()
    assert (entry["status"], entry["fault"]) == (201, "lost")


def test_hold_sends_nothing_and_is_logged_without_a_status(counter: Counter) -> None:
    counter.app.faults.add("hold")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{counter.url}/counters/a", timeout=5)
    [entry] = counter.app.request_log.entries()
    assert (entry["status"], entry["fault"]) == (None, "hold")
    assert entry["duration_ms"] >= 50


@pytest.mark.parametrize(("spec", "message"), [
    ({"kind": "nope"}, "kind must be one of"), ({"kind": "418", "count": 0}, "count must be a positive integer"),
    ({"kind": "418", "path": "("}, "not a valid regular expression"), ({"kind": "slow"}, "needs delay_seconds"),
    ({"kind": "418", "colour": "red"}, "unknown field"),
])
def test_bad_fault_specifications_are_400s_and_value_errors(counter: Counter, spec: dict, message: str) -> None:
    response = requests.post(f"{counter.url}/__control/faults", json=spec, timeout=5)
    assert response.status_code == 400
    assert message in response.json()["message"]
    with pytest.raises(InvalidFault, match=message):
        counter.app.faults.add_from(spec)
    assert isinstance(InvalidFault(400, "x", "y"), ValueError)


def test_control_routes_list_clear_and_reset_and_are_never_faulted_or_logged(counter: Counter) -> None:
    base = f"{counter.url}/__control"
    added = requests.post(f"{base}/faults", json={"kind": "down"}, timeout=5)
    assert (added.status_code, added.json()["remaining"]) == (201, None)  # until cleared
    assert [f["kind"] for f in requests.get(f"{base}/faults", timeout=5).json()] == ["down"]
    assert requests.get(f"{counter.url}/counters/a", timeout=5).status_code == 503
    assert requests.get(f"{counter.url}/counters/a", timeout=5).status_code == 503
    assert [(r["method"], r["status"]) for r in requests.get(f"{base}/requests", timeout=5).json()] == [
        ("GET", 503), ("GET", 503)]
    assert requests.delete(f"{base}/faults", timeout=5).status_code == 204
    assert requests.get(f"{counter.url}/counters/a", timeout=5).status_code == 200
    assert requests.post(f"{base}/reset", timeout=5).status_code == 204
    assert requests.get(f"{base}/requests", timeout=5).json() == []


@pytest.mark.parametrize(("lists", "shape"), [(control.named, {"faults": []}), (control.items, {"items": []})])
def test_list_answers_take_the_stand_ins_shape(lists, shape) -> None:
    with Counter(lists=lists) as server:
        assert requests.get(f"{server.url}/__control/faults", timeout=5).json() == shape


def test_an_oversized_body_is_a_413_without_reading_it(counter: Counter) -> None:
    response = requests.post(f"{counter.url}/counters/a", data=b"x" * 2048, timeout=5)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert counter.hits == 0


def test_an_unread_body_is_drained_so_keep_alive_goes_on(counter: Counter) -> None:
    connection = http.client.HTTPConnection(counter.host, counter.port, timeout=5)
    connection.request("GET", "/counters/a", body=b'{"ignored": true}', headers={"Content-Type": "application/json"})
    assert json.loads(connection.getresponse().read())["hits"] == 0
    connection.request("GET", "/counters/a")
    assert json.loads(connection.getresponse().read()) == {"name": "a", "hits": 0}
    connection.close()


def test_stop_refuses_connections_and_cuts_keep_alive_start_comes_back_on_the_same_port(counter: Counter) -> None:
    session = requests.Session()
    assert session.post(f"{counter.url}/counters/a", timeout=5).status_code == 201
    port = counter.port
    counter.stop()
    assert not counter.running
    with pytest.raises(requests.ConnectionError):
        session.get(f"{counter.url}/counters/a", timeout=5)
    counter.start()
    assert counter.port == port
    assert session.get(f"{counter.url}/counters/a", timeout=5).json()["hits"] == 1  # same state
    assert counter.start() is counter  # starting a running server is a no-op


SERVE = textwrap.dedent("""
    import sys
    from stand_ins.kit import StandInApp, StandInService, serve_until_signalled
    sys.exit(serve_until_signalled(StandInService(StandInApp("x"), port=int(sys.argv[1])), "x stand-in"))
""")


def test_the_serve_loop_prints_one_line_and_stops_on_sigterm_and_a_busy_port_is_one_line_and_exit_1() -> None:
    with subprocess.Popen([sys.executable, "-c", SERVE, "0"], cwd=tempfile.gettempdir(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        info = json.loads(proc.stdout.readline())
        assert info == {"url": info["url"], "control_url": f"{info['url']}/__control"}
        busy = subprocess.run([sys.executable, "-c", SERVE, info["url"].rsplit(":", 1)[1]], capture_output=True,
                              text=True, timeout=30, check=False)
        assert (busy.returncode, busy.stdout) == (1, "")
        assert busy.stderr.startswith("x stand-in failed to start:")
        assert "Traceback" not in busy.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""
