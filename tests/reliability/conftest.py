"""What the fault-injection suite needs on top of each pattern's own fixtures: a view of what operators would see
(the EMF metrics a handler flushed, the JSON log lines it wrote), Lambda contexts whose time runs out, and a way
to break a real system in the middle of a piece of work.

Each test module imports the fixtures of its pattern from tests/functions/<name>/conftest.py, so the faults are
injected into the same real parts (the Salesforce emulator over HTTPS, moto, the local stand-ins) that the
pattern's own tests use.
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from salesforce_access import RetryPolicy, Timeouts, get_access
from salesforce_access.observability import logger as layer_logger
from salesforce_access.observability import metrics as layer_metrics


class Observed:
    """What CloudWatch would receive during one test: metrics from the EMF documents printed when a handler's
    ``log_metrics`` flushes, and the Powertools JSON log lines of every function (they share one service logger)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], stream: io.StringIO):
        self._capsys = capsys
        self._stream = stream
        self._stdout = ""

    def _read(self) -> str:
        self._stdout += self._capsys.readouterr().out
        return self._stdout

    def metrics(self) -> Counter[str]:
        """Every metric flushed so far in this test, summed by name."""
        totals: Counter[str] = Counter()
        for document in _json_lines(self._read()):
            if "_aws" not in document:
                continue
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = document[metric["Name"]]
                    totals[metric["Name"]] += sum(value) if isinstance(value, list) else value
        return totals

    def logs(self, message: str | None = None) -> list[dict[str, Any]]:
        """Log records (parsed JSON), optionally only those whose message starts with `message`."""
        records = [r for r in _json_lines(self._stream.getvalue() + self._read()) if "level" in r and "message" in r]
        if message is None:
            return records
        return [r for r in records if str(r["message"]).startswith(message)]

    def text(self) -> str:
        return self._stream.getvalue() + self._read()


def _json_lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                yield value


@pytest.fixture
def observed(capsys: pytest.CaptureFixture[str]) -> Iterator[Observed]:
    layer_metrics.clear_metrics()  # Powertools keeps one metric set per process: nothing left from other tests
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(layer_logger.registered_formatter)
    service_logger = logging.getLogger(layer_logger.name)  # every function's Powertools Logger shares it
    service_logger.addHandler(handler)
    try:
        yield Observed(capsys, stream)
    finally:
        service_logger.removeHandler(handler)


class CountdownContext:
    """A Lambda context whose clock starts at the first time it is asked and then runs down in real time, as an
    invocation's does: `remaining_ms` at the first call, less each millisecond after."""

    def __init__(self, remaining_ms: int, function_name: str = "reliability-test"):
        self.function_name = function_name
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.remaining_ms = remaining_ms
        self._started: float | None = None

    def get_remaining_time_in_millis(self) -> int:
        if self._started is None:
            self._started = time.monotonic()
        return max(int(self.remaining_ms - (time.monotonic() - self._started) * 1000), 0)


def before_call(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, call_number: int,
                action: Callable[[], Any]) -> dict[str, int]:
    """Run `action` (which breaks a real system) just before the `call_number`-th call of owner.name."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call_number:
            action()
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


@pytest.fixture
def fast_layer(salesforce: Any) -> Any:
    """The layer as a function gets it, with retries that back off in milliseconds, so a fault that outlasts every
    retry shows in well under a second (production: 0.5 s doubling up to 8 s)."""
    access = get_access()
    access.session.retry = RetryPolicy(base_delay=0.01, max_delay=0.05)
    return access


@pytest.fixture
def short_timeouts(fast_layer: Any) -> Any:
    """And a 1 s read timeout (production: 30 s, cut to the invocation's time left), for the slow-answer faults."""
    fast_layer.session.timeouts = Timeouts(connect=1.0, read=1.0)
    return fast_layer
