"""Functions run in worker processes, one execution environment each, as Lambda runs them.

A `FunctionRunner` keeps a pool of warm workers for one function: an invocation takes an idle worker or
starts a new one (a cold start: the handler's module is imported once), up to the function's concurrency.
The worker's environment is built from scratch (the template's variables, the local overrides, Lambda's own
variables), never inherited from the stack's process. The invocation's deadline comes from the template's
Timeout; a worker that overruns it is killed and the invocation fails with Lambda's timeout error, and the
next invocation is a cold start again, as on Lambda.

Stopping a runner ends every worker within about a second: idle ones exit when their input closes, busy ones
are sent SIGTERM (then SIGKILL if they are still there after a short grace), and their invocations fail with
Runtime.ExitError. Workers ignore SIGINT, so Ctrl-C reaches only the stack's process, which stops them.

Hand-written because no library serves without Docker: `sam local` and moto's Lambda run functions in Lambda's
container images.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("worker.py")
PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")  # never proxies or credentials
STOP_GRACE_SECONDS = 1.0  # how long a stopping worker may take to exit before it is killed
# The pool of a function without ReservedConcurrentExecutions (docs/local-stack.md, "Concurrency"): enough
# execution environments for 100 concurrent callers, but never more than half the machine's available memory
# holds at WORKER_MEMORY_MB each (the order API's environment, with boto3, Powertools and pydantic imported,
# peaks at about 70 MB resident; the rest is room for what an invocation allocates), and never fewer than 10.
DEFAULT_CONCURRENCY = 100
MIN_CONCURRENCY = 10
WORKER_MEMORY_MB = 100
LogSink = Callable[[str, str], None]  # (function logical id, one line of its output)


@dataclass
class InvocationResult:
    """What Lambda's Invoke answers: the payload, or the error (FunctionError set)."""

    request_id: str
    payload: Any = None
    error: dict[str, Any] | None = None
    cold_start: bool = False
    init_ms: float = 0.0
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> Any:
        return self.payload if self.error is None else self.error


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str
    code_uri: Path
    layers: list[Path]
    timeout_seconds: float
    memory_mb: int
    environment: dict[str, str]
    max_concurrency: int = MIN_CONCURRENCY
    extra: dict[str, str] = field(default_factory=dict)


def available_memory_mb(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in MB (Linux); None where the machine does not say."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def default_concurrency(available_mb: int | None = None) -> int:
    """Execution environments per function when the template reserves none: sized for 100 concurrent callers,
    bounded by memory (half of what is available, WORKER_MEMORY_MB each), at least MIN_CONCURRENCY."""
    memory = available_memory_mb() if available_mb is None else available_mb
    if memory is None:
        return DEFAULT_CONCURRENCY
    return max(MIN_CONCURRENCY, min(DEFAULT_CONCURRENCY, memory // 2 // WORKER_MEMORY_MB))


class Worker:
    """One process: requests on stdin, answers on stdout, the function's output on stderr."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], sink: LogSink):
        self.spec = spec
        self.process = subprocess.Popen(  # noqa: S603 - our own worker script with this interpreter
            [sys.executable, "-u", str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, cwd=str(spec.code_uri), text=True, encoding="utf-8", bufsize=1)
        self.answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.init_ms = 0.0
        self.used = False
        threading.Thread(target=self._read_answers, daemon=True, name=f"{spec.logical_id}-answers").start()
        threading.Thread(target=self._read_logs, args=(sink,), daemon=True, name=f"{spec.logical_id}-logs").start()

    def _read_answers(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.answers.put(json.loads(line))
            except ValueError:
                continue
        self.answers.put(None)  # the process ended

    def _read_logs(self, sink: LogSink) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            sink(self.spec.logical_id, line.rstrip("\n"))

    def wait_init(self, timeout: float) -> dict[str, Any] | None:
        """The init phase's answer ({"init_ms", "error"}), or None if the process died or hung."""
        try:
            answer = self.answers.get(timeout=timeout)
        except queue.Empty:
            return None
        if answer is not None:
            self.init_ms = float(answer.get("init_ms", 0.0))
        return answer

    def invoke(self, event: Any, request_id: str, deadline: float) -> dict[str, Any] | None:
        """The answer; {"_ended": True} if the process died, None when the deadline passed."""
        assert self.process.stdin is not None
        self.used = True
        request = {"event": event, "request_id": request_id, "deadline_ms": int(deadline * 1000),
                   "trace_id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"}
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError):  # the process ended, or the runner closed its input to stop it
            return {"_ended": True}
        try:
            answer = self.answers.get(timeout=max(deadline - time.time(), 0.0))
        except queue.Empty:
            return None
        return answer if answer is not None else {"_ended": True}

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close_input(self) -> None:
        """An idle worker exits when its input closes (the end of its request loop)."""
        if self.process.stdin:
            with contextlib.suppress(OSError, ValueError):
                self.process.stdin.close()

    def terminate(self) -> None:
        """A busy worker is in the function's code: SIGTERM ends it there."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.terminate()

    def reap(self, deadline: float) -> None:
        """Wait for the process to end until `deadline` (time.monotonic), then kill it."""
        try:
            self.process.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        if self.process.poll() is None:
            self.close_input()
            self.reap(time.monotonic() + grace)


class FunctionRunner:
    """Invokes one function; thread-safe; workers stay warm between invocations."""

    def __init__(self, spec: FunctionSpec, sink: LogSink | None = None):
        self.spec = spec
        self.sink = sink or default_sink
        self._idle: list[Worker] = []
        self._workers: set[Worker] = set()  # every live worker, idle or busy, so that stop() reaches them all
        self._busy = 0
        self._cond = threading.Condition()
        self._stopped = False
        self.invocations = 0
        self.cold_starts = 0

    def environment(self) -> dict[str, str]:
        spec = self.spec
        env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
        env.update(spec.environment)
        env.update({
            "AWS_LAMBDA_FUNCTION_NAME": spec.name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb), "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{uuid.uuid4().hex}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13", "LAMBDA_TASK_ROOT": str(spec.code_uri),
            "_HANDLER": spec.handler, "LOCAL_LAYER_PATHS": os.pathsep.join(str(p) for p in spec.layers),
            "LOCAL_FUNCTION_ARN": spec.arn, "TZ": "UTC", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
        })
        env.update(spec.extra)
        return env

    def _take(self, deadline: float) -> Worker | None:
        """An idle warm worker, or None when a new one may be started; waits while at the concurrency limit."""
        with self._cond:
            while True:
                if self._stopped:
                    raise RuntimeError(f"{self.spec.logical_id} is stopped")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        self._busy += 1
                        return worker
                    self._workers.discard(worker)
                if self._busy < self.spec.max_concurrency:
                    self._busy += 1
                    return None
                if not self._cond.wait(timeout=max(deadline - time.time(), 0.01)) and time.time() >= deadline:
                    raise TimeoutError(f"{self.spec.logical_id}: every execution environment stayed busy")

    def _give_back(self, worker: Worker | None) -> None:
        with self._cond:
            self._busy -= 1
            if worker is not None and worker.alive and not self._stopped:
                self._idle.append(worker)
                worker = None
            elif worker is not None:
                self._workers.discard(worker)
            self._cond.notify()
        if worker is not None:
            worker.stop()

    def _start_worker(self) -> Worker:
        worker = Worker(self.spec, self.environment(), self.sink)
        with self._cond:
            stopped = self._stopped
            if not stopped:
                self._workers.add(worker)
        if stopped:  # stop() ran while the process was starting
            worker.terminate()
            worker.reap(time.monotonic() + STOP_GRACE_SECONDS)
            raise RuntimeError(f"{self.spec.logical_id} is stopped")
        return worker

    def invoke(self, event: Any, request_id: str | None = None) -> InvocationResult:
        request_id = request_id or str(uuid.uuid4())
        timeout = self.spec.timeout_seconds
        started = time.time()
        try:
            worker = self._take(started + timeout)
        except TimeoutError as exc:
            self.report(f"invocation refused: TooManyRequestsException (all {self.spec.max_concurrency} execution "
                        f"environments busy)", started, request_id)
            return InvocationResult(request_id, error={"errorType": "TooManyRequestsException",
                                                       "errorMessage": str(exc)})
        result = InvocationResult(request_id)
        try:
            if worker is None:
                worker = self._start_worker()  # RuntimeError if the runner stopped meanwhile, as _take raises
                result.cold_start = True
                self.cold_starts += 1
                # Lambda gives the init phase up to 10 s of its own, outside the function's timeout.
                init = worker.wait_init(max(10.0, timeout))
                result.init_ms = worker.init_ms
                if init is None:
                    self.report("invocation failed: Runtime.ExitError (the execution environment exited or hung "
                                "during init)", started, request_id)
                    worker.stop()
                    result.error = {"errorType": "Runtime.ExitError",
                                    "errorMessage": "the execution environment exited or hung during init"}
                    return result  # _give_back forgets a dead worker
            self.invocations += 1
            begin = time.time()
            answer = worker.invoke(event, request_id, begin + timeout)
            result.duration_ms = round((time.time() - begin) * 1000, 1)
            if answer is None or answer.get("_ended"):
                exited = answer is not None
                self.report("invocation failed: Runtime.ExitError (the process exited)" if exited else
                            f"invocation timed out: Sandbox.Timedout (Timeout {timeout:g} s; the environment is "
                            "killed, the next invocation is a cold start)", started, request_id)
                worker.process.kill()
                worker.stop()
                result.error = ({"errorType": "Runtime.ExitError",
                                 "errorMessage": f"RequestId: {request_id} Error: Runtime exited without "
                                                 "providing a reason"} if exited else
                                {"errorType": "Sandbox.Timedout",
                                 "errorMessage": f"RequestId: {request_id} Error: Task timed out after "
                                                 f"{timeout:.2f} seconds"})
            elif answer.get("error"):
                result.error = answer["error"]
                if str(result.error.get("errorType", "")).startswith("Runtime.") and \
                        result.error["errorType"] != "Runtime.MarshalError":
                    worker.stop()  # an init failure: the next invocation tries a fresh environment
            else:
                result.payload = answer.get("result")
            return result
        finally:
            self._give_back(worker)

    def report(self, what: str, started: float, request_id: str) -> None:
        """One line for an invocation the stack refused or cut short: which function, why, how long it waited."""
        self.sink(self.spec.logical_id, f"[local] {what}; waited {time.time() - started:.2f} s; "
                                        f"request {request_id}")

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """End every worker: idle ones by closing their input, busy ones by SIGTERM; whatever is left after
        `grace` seconds is killed. Their invocations fail with Runtime.ExitError; new ones are refused."""
        with self._cond:
            self._stopped = True
            idle, self._idle = self._idle, []
            workers = list(self._workers)
            self._workers.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.close_input()
            if worker not in idle:
                worker.terminate()
        deadline = time.monotonic() + grace
        for worker in workers:
            worker.reap(deadline)


# -- terminal output -----------------------------------------------------------------------------------------


_print_lock = threading.Lock()


def format_log_line(function: str, line: str) -> str:
    """A Powertools JSON log line as `[Function] LEVEL message key=value`; other lines as they are."""
    text = line
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and "_aws" in record:  # an EMF metrics blob
            names = [m["Name"] for d in record["_aws"].get("CloudWatchMetrics", []) for m in d.get("Metrics", [])]
            values = {n: record.get(n) for n in names}
            text = "metrics " + " ".join(f"{n}={v[0] if isinstance(v, list) and len(v) == 1 else v}"
                                         for n, v in values.items())
        elif isinstance(record, dict) and "message" in record and "level" in record:
            skip = {"level", "message", "timestamp", "service", "location", "sampling_rate", "xray_trace_id",
                    "function_name", "function_memory_size", "function_arn", "function_request_id", "cold_start"}
            extras = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                              for k, v in record.items() if k not in skip)
            text = f"{record['level']:<7} {record['message']}" + (f"  {extras}" if extras else "")
    return f"[{function}] {text}"


def default_sink(function: str, line: str) -> None:
    """Function output on the terminal (stderr), readable: one line each, prefixed by the function."""
    with _print_lock:
        print(format_log_line(function, line), file=sys.stderr, flush=True)


def collecting_sink(store: list[tuple[str, str]], echo: bool = False) -> LogSink:
    """Keeps every line (tests read them); optionally also prints them."""

    def sink(function: str, line: str) -> None:
        store.append((function, line))
        if echo:
            default_sink(function, line)

    return sink
