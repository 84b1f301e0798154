"""Fixtures for the local stack's tests: the fixture template (a probe function behind every event source)
and a collected log of the functions' output."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
FIXTURE_TEMPLATE = HERE / "fixture" / "template.yaml"
ROOT = HERE.parents[2]


class ProbeLog:
    """The JSON lines the probe function appends, one per invocation, from its own process."""

    def __init__(self, path: Path):
        self.path = path

    def entries(self, kind: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [e for e in lines if kind is None or e["kind"] == kind]

    def clear(self) -> None:
        self.path.write_text("")

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0
                 ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entries = self.entries()
            if predicate(entries):
                return entries
            time.sleep(0.05)
        raise AssertionError(f"the probe log never matched; it holds {self.entries()}")


@pytest.fixture(scope="module")
def probe_log(tmp_path_factory: pytest.TempPathFactory) -> ProbeLog:
    return ProbeLog(tmp_path_factory.mktemp("probe") / "probe.jsonl")


@pytest.fixture(scope="module")
def probe_env_file(probe_log: ProbeLog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("env") / "probe.env"
    path.write_text(f"# the probe's log\nPROBE_LOG={probe_log.path}\nexport FROM_ENV_FILE='quoted value'\n"
                    "PARAM:NeededLater=given-by-env-file\n")
    return path
