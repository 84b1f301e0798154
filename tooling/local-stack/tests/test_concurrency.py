"""100 concurrent callers on one route are all answered, none reset (issue 16): the listen backlog and the
function's pool are sized for them; every invocation the stack refuses or cuts short logs one line saying
which function, why and how long it waited."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from local.stack import LocalStack
from local.stack.runtime import MIN_CONCURRENCY, collecting_sink, default_concurrency

from .conftest import HERE

CALLERS = 100


@pytest.fixture(scope="module")
def crowd(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("crowd")
    (work / "hold").mkdir()
    env_file = work / "crowd.env"
    env_file.write_text(f"PROBE_HOLD_DIR={work / 'hold'}\n")
    lines: list[tuple[str, str]] = []
    with LocalStack(HERE / "fixture" / "crowd-template.yaml", env_file=env_file,
                    log_sink=collecting_sink(lines)) as stack:
        stack.lines = lines
        yield stack


def test_100_concurrent_callers_are_all_answered_while_all_in_flight_at_once(crowd):
    barrier = threading.Barrier(CALLERS, timeout=60)
    answers: list[object] = [None] * CALLERS

    def call(n: int) -> None:
        barrier.wait()
        try:
            answers[n] = requests.get(f"{crowd.api_url}/crowd/{n}?hold={CALLERS}", timeout=90)
        except requests.RequestException as exc:  # a reset or refused connection
            answers[n] = exc

    threads = [threading.Thread(target=call, args=(n,), daemon=True) for n in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    failed = [a if isinstance(a, Exception) else (a.status_code, a.text) for a in answers  # type: ignore[union-attr]
              if a is None or isinstance(a, Exception) or a.status_code != 200]
    assert failed == [], f"{len(failed)} of {CALLERS} callers failed: {failed[:5]}"
    # every one of them was in flight at the same time: the pool held 100 execution environments
    assert not [line for _, line in crowd.lines if line.startswith("[local]")]


def test_the_listen_backlog_is_sized_for_the_callers(crowd):
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("ss (iproute2) is not installed")
    port = crowd.api_url.rsplit(":", 1)[1]
    listing = subprocess.run([ss, "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True,
                             timeout=10).stdout.split()
    assert int(listing[2]) >= CALLERS  # Send-Q of a listening socket is its backlog


def test_a_timed_out_invocation_logs_one_line(crowd):
    crowd.lines.clear()
    result = crowd.invoke("LateFunction", {"action": "sleep", "seconds": 5})
    assert result.error is not None
    assert result.error["errorType"] == "Sandbox.Timedout"
    [line] = [line for fn, line in crowd.lines if fn == "LateFunction" and line.startswith("[local]")]
    assert "timed out: Sandbox.Timedout" in line
    assert "waited 1." in line
    assert result.request_id in line


def test_an_integration_timeout_logs_one_line(crowd):
    crowd.lines.clear()
    answer = requests.post(f"{crowd.api_url}/late/slow", json={"seconds": 0.8}, timeout=30)
    assert answer.status_code == 504
    [line] = [line for fn, line in crowd.lines if fn == "LateFunction" and line.startswith("[local]")]
    assert "504 integration timeout" in line
    assert answer.headers["x-amzn-RequestId"] in line


def test_the_pool_is_bounded_by_memory():
    assert default_concurrency(available_mb=64_000) == 100
    assert default_concurrency(available_mb=4_000) == 20  # half of 4 GB at 100 MB each
    assert default_concurrency(available_mb=500) == MIN_CONCURRENCY


def test_meminfo_is_read(tmp_path: Path):
    from local.stack.runtime import available_memory_mb

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 8000000 kB\nMemAvailable: 4096000 kB\n")
    assert available_memory_mb(meminfo) == 4000
    assert available_memory_mb(tmp_path / "missing") is None
