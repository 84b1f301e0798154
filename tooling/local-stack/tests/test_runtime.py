"""The function runtime: a worker process per execution environment, as Lambda runs a function."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from local.stack.runtime import FunctionRunner, FunctionSpec, collecting_sink, format_log_line

from .conftest import HERE

FUNCTIONS = HERE / "fixture" / "functions"
LAYER = HERE / "fixture" / "layers" / "probe_layer"


def _runner(handler: str = "probe.handler.handler", code: str = "probe", timeout: float = 2.0,
            lines: list | None = None, **env: str) -> FunctionRunner:
    spec = FunctionSpec("Probe", "stack-Probe", "arn:aws:lambda:eu-west-1:123456789012:function:stack-Probe", handler,
                        FUNCTIONS / code, [LAYER], timeout, 256, {"FROM_TEMPLATE": "yes", **env}, max_concurrency=2)
    return FunctionRunner(spec, collecting_sink(lines if lines is not None else []))


@pytest.fixture
def runner():
    r = _runner()
    yield r
    r.stop()


def test_cold_start_once_then_warm(runner):
    first = runner.invoke({"action": "env"})
    second = runner.invoke({"action": "env"})
    assert first.ok, first.error
    assert (first.cold_start, second.cold_start) == (True, False)
    assert first.init_ms > 0
    assert (first.payload["invocations"], second.payload["invocations"]) == (1, 2)  # the same module, warm
    assert first.payload["pid"] == second.payload["pid"] != os.getpid()


def test_environment_paths_and_context_are_lambdas(runner, monkeypatch):
    monkeypatch.setenv("PARENT_ONLY_SECRET", "must-not-leak")
    result = runner.invoke({"action": "env"})
    out = result.payload
    assert out["sys_path"] == [str(FUNCTIONS / "probe"), str(LAYER)]  # CodeUri, then the layer
    assert out["cwd"] == str(FUNCTIONS / "probe")
    assert out["layer"] == "from the probe layer"
    env = out["env"]
    assert env["FROM_TEMPLATE"] == "yes"
    assert "PARENT_ONLY_SECRET" not in env  # built from scratch, never inherited
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "stack-Probe"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["LAMBDA_TASK_ROOT"] == str(FUNCTIONS / "probe")
    assert (out["function_name"], out["memory"]) == ("stack-Probe", "256")
    assert out["request_id"] == result.request_id
    assert out["arn"].endswith(":function:stack-Probe")
    assert 1000 < out["remaining_ms"] <= 2000  # counting down from the 2 s timeout


def test_an_error_comes_back_in_lambdas_shape_and_the_worker_stays_warm(runner):
    failed = runner.invoke({"action": "fail"})
    assert not failed.ok
    assert failed.error["errorType"] == "ValueError"
    assert failed.error["errorMessage"] == "asked to fail"
    assert any("handler.py" in line for line in failed.error["stackTrace"])
    after = runner.invoke({"action": "env"})
    assert after.ok
    assert not after.cold_start


def test_a_timeout_kills_the_environment_and_the_next_call_is_cold():
    runner = _runner(timeout=1.0)
    try:
        started = time.monotonic()
        result = runner.invoke({"action": "sleep", "seconds": 5})
        elapsed = time.monotonic() - started
        assert result.error["errorType"] == "Sandbox.Timedout"
        assert "Task timed out after 1.00 seconds" in result.error["errorMessage"]
        assert elapsed < 4
        again = runner.invoke({"action": "env"})
        assert again.ok
        assert again.cold_start
    finally:
        runner.stop()


def test_an_import_error_is_runtime_import_module_error():
    runner = _runner("broken.handler.handler", code="broken")
    try:
        result = runner.invoke({})
        assert result.error["errorType"] == "Runtime.ImportModuleError"
        assert "a_module_that_does_not_exist" in result.error["errorMessage"]
    finally:
        runner.stop()


def test_a_missing_handler_and_an_unserialisable_result(runner):
    missing = _runner("probe.handler.nope")
    try:
        assert missing.invoke({}).error["errorType"] == "Runtime.HandlerNotFound"
    finally:
        missing.stop()
    assert runner.invoke({"action": "unserialisable"}).error["errorType"] == "Runtime.MarshalError"


def test_a_process_that_exits_is_reported_and_replaced(runner):
    result = runner.invoke({"action": "exit"})
    assert result.error["errorType"] == "Runtime.ExitError"
    assert runner.invoke({"action": "env"}).cold_start


def test_concurrent_invocations_get_their_own_environments():
    import threading

    runner = _runner()
    results = []
    try:
        threads = [threading.Thread(target=lambda: results.append(runner.invoke({"action": "sleep", "seconds": 0.5})))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.ok for r in results] == [True, True]
        assert runner.cold_starts == 2
    finally:
        runner.stop()


def test_output_goes_to_the_sink_prefixed_and_readable(tmp_path: Path):
    lines: list = []
    runner = _runner(lines=lines)
    try:
        runner.invoke({"action": "fail"})
        deadline = time.monotonic() + 5
        while not any("ValueError" in line for _, line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(fn == "Probe" and "ValueError: asked to fail" in line for fn, line in lines)
    finally:
        runner.stop()
    record = '{"level": "INFO", "message": "billed", "timestamp": "t", "service": "s", "contract_id": "800"}'
    assert format_log_line("Billing", record) == "[Billing] INFO    billed  contract_id=800"
    metrics = '{"_aws": {"CloudWatchMetrics": [{"Metrics": [{"Name": "Billed"}]}]}, "Billed": [1.0]}'
    assert format_log_line("Billing", metrics) == "[Billing] metrics Billed=1.0"


def _running(pid: int) -> bool:
    """The process exists and has not ended (a zombie has ended; its parent only has not read its status)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_stop_ends_busy_and_idle_workers_at_once():
    import threading

    lines: list = []
    runner = _runner(timeout=60.0, lines=lines)
    busy: list = []
    thread = threading.Thread(target=lambda: busy.append(runner.invoke({"action": "sleep", "seconds": 30})))
    thread.start()
    idle = runner.invoke({"action": "env"})  # a second environment, warm and idle once this returns
    assert idle.ok, idle.error
    deadline = time.monotonic() + 10
    while runner.invocations < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = {w.process.pid for w in runner._workers}
    assert len(workers) == 2
    assert idle.payload["pid"] in workers

    started = time.monotonic()
    runner.stop()
    stopped_in = time.monotonic() - started
    thread.join(10)

    assert stopped_in < 3  # the sleeping invocation had 29 s to go
    assert not any(_running(pid) for pid in workers)
    assert busy[0].error["errorType"] == "Runtime.ExitError"  # the busy invocation failed, it did not hang
    with pytest.raises(RuntimeError, match="stopped"):
        runner.invoke({"action": "env"})
    assert not any("Traceback" in line for _, line in lines)


def test_a_worker_ignores_ctrl_c_which_the_stack_handles(runner):
    import signal

    lines: list = []
    runner.sink = collecting_sink(lines)
    first = runner.invoke({"action": "env"})
    os.kill(first.payload["pid"], signal.SIGINT)  # what a terminal's Ctrl-C sends to the whole process group
    time.sleep(0.2)

    again = runner.invoke({"action": "env"})

    assert again.ok
    assert not again.cold_start
    assert again.payload["pid"] == first.payload["pid"]
    assert not any("KeyboardInterrupt" in line for _, line in lines)
