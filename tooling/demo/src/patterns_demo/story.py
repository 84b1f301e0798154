"""What the demo prints: a short story per pattern, and the checks that prove it.

Plain text that reads well in any terminal or CI log; colour only when stdout is a terminal and NO_COLOR is
not set (https://no-color.org).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

_SALESFORCE_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")


@dataclass
class CheckResult:
    pattern: str
    label: str
    ok: bool
    detail: str = ""


@dataclass
class Story:
    """Prints the scenario and records every check; `failures` decides the exit code."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    colour: bool | None = None
    checks: list[CheckResult] = field(default_factory=list)
    pattern: str = ""
    _started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.colour is None:
            self.colour = bool(getattr(self.out, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ

    # -- text ------------------------------------------------------------------------------------------------

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def title(self, text: str) -> None:
        self.print(self._paint(text, "1"))
        self.print("=" * len(text))

    def section(self, number: int, total: int, name: str, headline: str) -> None:
        self.pattern = name
        self.print()
        text = f"[{number}/{total}] {name}: {headline}"
        self.print(self._paint(text, "1;36"))
        self.print("-" * len(text))

    def step(self, text: str) -> None:
        self.print(f"  {text}")

    def detail(self, text: str) -> None:
        self.print(f"      {text}")

    def sent(self, text: str) -> None:
        self.print(f"  -> {text}")

    def received(self, text: str) -> None:
        self.print(f"  <- {text}")

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    # -- checks ----------------------------------------------------------------------------------------------

    def check(self, label: str, ok: bool, detail: str = "") -> bool:
        """One verified claim; printed at once, remembered for the summary and the exit code."""
        result = CheckResult(self.pattern, label, bool(ok), detail)
        self.checks.append(result)
        mark = self._paint("ok  ", "32") if ok else self._paint("FAIL", "1;31")
        self.print(f"  {mark} {label}" + (f": {detail}" if detail and not ok else ""))
        return bool(ok)

    def fail(self, label: str, detail: str = "") -> bool:
        return self.check(label, False, detail)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.ok]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def salesforce_calls(log: Iterable[dict[str, Any]]) -> tuple[Counter[str], int, int]:
    """(API calls by kind, OAuth token requests, Streaming API exchanges) from the emulator's request log.

    Ids and external keys in paths become {id} / {key}, so `PATCH sobjects/Contract/{id}` counts every
    Contract update as one kind of call."""
    calls: Counter[str] = Counter()
    tokens = streaming = 0
    for entry in log:
        path = entry["path"]
        if path.startswith("/services/oauth2/"):
            tokens += 1
            continue
        if path.startswith("/cometd/"):
            streaming += 1
            continue
        match = re.match(r"^/services/data/v[0-9.]+/?(.*)$", path)
        if not match:
            calls[f"{entry['method']} {path}"] += 1
            continue
        parts = match.group(1).split("/") if match.group(1) else []
        shown = []
        for i, part in enumerate(parts):
            if i >= 3 and parts[0] == "sobjects" and parts[2].endswith("__c"):
                shown.append("{key}")
            elif _SALESFORCE_ID.match(part) and any(ch.isdigit() for ch in part):
                shown.append("{id}")
            else:
                shown.append(part)
        calls[f"{entry['method']} {'/'.join(shown) or '(versions)'}"] += 1
    return calls, tokens, streaming


def describe_calls(calls: Counter[str]) -> str:
    total = sum(calls.values())
    if not total:
        return "none"
    kinds = ", ".join(f"{kind}" + (f" x{n}" if n > 1 else "") for kind, n in sorted(calls.items()))
    return f"{total} ({kinds})"
