"""What the pattern benchmarks share: child stand-ins, a Lambda context, the environment, quiet logs, statistics.

The stand-ins (Salesforce emulator, ERP, billing) run as child processes, as in customer_sync.py: a handler
measured in this process then competes with them for CPUs, as it would on a network, but not for the GIL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

REGION = "eu-west-1"

# What tests/conftest.py sets before any boto3 client exists: fake credentials (moto), no X-Ray daemon.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "Benchmark",
}


# Values for the template's parameters that have no default. Benchmarks override what they use (ERP URL...);
# the rest only needs the right shape, as nothing reads it.
PARAMETERS = {
    "SalesforceSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:salesforce/org-AbCdEf",
    "ErpBaseUrl": "http://127.0.0.1:9",
    "ErpApiKeySecretArn": "",
    "BillingApiUrl": "http://127.0.0.1:9",
    "SalesforceOrgId": "00D000000000001EAA",
    "LogisticsSigningSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:logistics/signing-AbCdEf",
}


def project_dir() -> Path:
    """The project measured (template.yaml, functions/, layers/): the nearest template.yaml from the current
    directory up, as the local stack finds it."""
    from local.stack.project import project_root

    return project_root()


def layer_dir() -> Path:
    return project_dir() / "layers" / "salesforce_access"


def template_environment(logical_id: str, **overrides: str) -> dict[str, str]:
    """A function's environment variables as template.yaml sets them (Globals merged), with overrides."""
    from local.stack.template import read_template

    return {**read_template(parameters=PARAMETERS).environment(logical_id), **overrides}


def import_paths(*functions: str) -> None:
    """Put the layer and the functions' CodeUri folders on sys.path, as Lambda does (/opt/python, /var/task)."""
    for path in (layer_dir(), *(project_dir() / "functions" / name for name in functions)):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


# -- statistics ----------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 1,000 values is the 990th smallest)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered) - 1e-9)))
    return ordered[rank - 1]


def p50_p99(values_ms: Sequence[float]) -> tuple[float, float]:
    return statistics.median(values_ms), percentile(values_ms, 0.99)


def timed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# -- a Lambda invocation ---------------------------------------------------------------------------------------


class Context:
    """A fresh invocation: a new request id and the function's whole timeout ahead of it."""

    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:benchmark"

    def __init__(self, function_name: str = "benchmark", timeout_seconds: float = 30, memory_mb: int = 512):
        self.function_name = function_name
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# -- the environment -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then put back what was there (a run() inside the test suite
    must not leak its settings into later tests)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Log lines and EMF metrics still get formatted and written (a real cost in Lambda), but to /dev/null
    instead of the benchmark's table: Powertools' handlers hold the stdout they were created with."""
    with open(os.devnull, "w") as sink:
        swapped: list[tuple[logging.StreamHandler, Any]] = []
        loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
        for log in loggers:
            for handler in getattr(log, "handlers", []):
                if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__,
                                                                                     sys.stderr, sys.__stderr__):
                    swapped.append((handler, handler.setStream(sink)))
        try:
            with contextlib.redirect_stdout(sink):
                yield
        finally:
            for handler, stream in swapped:
                handler.setStream(stream)


# -- child stand-ins -------------------------------------------------------------------------------------------


class Child(dict):
    """A stand-in running as a child process: the JSON line it printed when ready, and ``stop()`` (the
    system down: connections refused)."""

    def __init__(self, process: subprocess.Popen, info: dict[str, Any]):
        super().__init__(info)
        self.process = process

    def stop(self) -> None:
        terminate(self.process)


@contextlib.contextmanager
def child(module: str, *args: str) -> Iterator[Child]:
    """``python -m <module> serve --port 0 ...`` as a child process, until the block ends.

    Started through this module's ``__main__`` (below), which turns Nagle's algorithm off for the child's
    http.server handlers first: the billing stand-in writes headers and body in two sends and would otherwise
    add a 40 ms delayed-ACK stall to every keep-alive request, which no real billing API does (the ERP
    stand-in sets TCP_NODELAY itself).
    """
    command = [sys.executable, "-m", "patterns_benchmarks.harness", module, "serve", "--port", "0", *args]
    process = subprocess.Popen(command, cwd=project_dir(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603 - our own stand-ins, fixed argv
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{module} did not start: {process.stderr.read() if process.stderr else ''}")
        yield Child(process, json.loads(line))
    finally:
        terminate(process)


def terminate(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


class EmulatorControl:
    """The emulator's /__emulator endpoints, for a child-process emulator (emu.requests() over HTTP)."""

    def __init__(self, info: Mapping[str, Any]):
        self.url = info["control_url"]
        self.session = requests.Session()
        self.session.verify = info["ca_bundle"]
        self.session.trust_env = False

    def requests(self) -> list[dict[str, Any]]:
        response = self.session.get(f"{self.url}/requests", timeout=10)
        response.raise_for_status()
        return response.json()

    def clear_requests(self) -> None:
        self.session.delete(f"{self.url}/requests", timeout=10).raise_for_status()

    def api_calls(self) -> int:
        """Calls that count against the org's daily allocation (every /services/data/ request)."""
        return sum(1 for entry in self.requests() if entry["path"].startswith("/services/data/"))


class Org:
    """The org as an administrator sets it up for a benchmark (never through the code being measured)."""

    def __init__(self, info: Mapping[str, Any]):
        from salesforce_emulator.connection import fetch_token, https_session

        self.info = dict(info)
        self.session = https_session(self.info)
        self.token = fetch_token(self.info, self.session)
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        self.base = f"{info['instance_url']}/services/data/v{info['api_version']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base}/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def create(self, sobject: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """Ids of the new records, in order (sObject Collections, 200 a call, all or none)."""
        ids: list[str] = []
        for start in range(0, len(rows), 200):
            records = [{"attributes": {"type": sobject}, **row} for row in rows[start:start + 200]]
            results = self.call("POST", "composite/sobjects", json={"allOrNone": True, "records": records})
            failed = [r for r in results if not r.get("success")]
            if failed:
                raise RuntimeError(f"could not create {sobject} records: {failed[:3]}")
            ids += [r["id"] for r in results]
        return ids


def emulator() -> contextlib.AbstractContextManager[Child]:
    """The Salesforce emulator as a child process, with an allocation no benchmark can spend."""
    return child("salesforce_emulator", "--daily-api-limit", "100000000")


def layer_secret(info: Mapping[str, Any]) -> dict[str, str]:
    """A JWT-bearer secret for the emulator in (moto) Secrets Manager: the layer's environment variables."""
    import boto3

    secret = {"flow": "jwt_bearer", "client_id": info["client_id"], "username": info["username"],
              "private_key": Path(info["private_key_file"]).read_text(), "login_url": info["login_url"],
              "api_version": info["api_version"]}
    arn = boto3.client("secretsmanager").create_secret(Name=f"salesforce/benchmark-{uuid.uuid4().hex[:8]}",
                                                       SecretString=json.dumps(secret))["ARN"]
    return {"SALESFORCE_SECRET_ARN": arn, "SALESFORCE_CA_BUNDLE": info["ca_bundle"]}


@contextlib.contextmanager
def fresh_aws() -> Iterator[None]:
    """moto for every service, with Powertools' parameter caches and the layer's container cache emptied, so
    nothing read in an earlier moto world (a secret, a token) survives into this one."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
    from moto import mock_aws

    from salesforce_access import reset_access_cache

    with environment(FAKE_AWS), mock_aws():
        parameters.clear_caches()
        DEFAULT_PROVIDERS.clear()
        reset_access_cache()
        try:
            yield
        finally:
            parameters.clear_caches()
            DEFAULT_PROVIDERS.clear()
            reset_access_cache()


class MotoClock:
    """Seconds spent inside moto's in-process AWS (its backends answering boto3), so that a figure can be shown
    with and without it: moto is not AWS's speed (faster for one DynamoDB item, far slower for an SQS queue
    holding many messages, which it scans on every send)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextlib.contextmanager
    def running(self) -> Iterator[MotoClock]:
        from moto.core.botocore_stubber import BotocoreStubber

        original = BotocoreStubber.process_request
        clock = self

        def timed(stubber: Any, request: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(stubber, request)
            finally:
                clock.seconds += time.perf_counter() - started

        BotocoreStubber.process_request = timed  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BotocoreStubber.process_request = original  # type: ignore[method-assign]

    def ms(self) -> float:
        return self.seconds * 1000


def create_state_table(name: str = "state") -> None:
    import boto3

    boto3.client("dynamodb").create_table(
        TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")


def table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _serve_without_nagle(argv: list[str]) -> None:
    """``python -m patterns_benchmarks.harness <module> serve ...``: run ``python -m <module> serve ...`` with
    TCP_NODELAY on every connection its http.server accepts."""
    import runpy
    import socketserver

    socketserver.StreamRequestHandler.disable_nagle_algorithm = True
    module, *rest = argv
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _serve_without_nagle(sys.argv[1:])
