"""Run bandit and fail on every finding that is not justified, with one justification per line for both linters.

ruff's flake8-bandit rules (`select = ["S"]` in pyproject.toml, run by `make lint`) port bandit's tests under the
same numbers (bandit's B608 is ruff's S608), so code in this repository justifies an accepted finding once, for
ruff: `# noqa: S608 - why` on the line, or a per-file-ignores entry with its reason in pyproject.toml. bandit reads
only `# nosec`. This gate runs bandit (JSON report) and drops a finding only when the same rule is justified for
ruff on one of the finding's lines or for its file; anything else fails `make security`. Written by hand because
neither tool reads the other's suppressions.

    python tests/security/bandit_gate.py -c .bandit.yaml -r functions layers tooling
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOQA = re.compile(r"#\s*noqa:\s*(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)")


@dataclass(frozen=True)
class Finding:
    test_id: str
    path: str  # relative to the repository root, with forward slashes
    lines: tuple[int, ...]
    severity: str
    confidence: str
    text: str

    @property
    def ruff_code(self) -> str:
        return "S" + self.test_id.removeprefix("B")

    def describe(self) -> str:
        return (f"{self.path}:{self.lines[0]}: {self.test_id} [{self.severity}/{self.confidence}] {self.text} "
                f"(justify it for ruff with `# noqa: {self.ruff_code} - why`, fix it, or skip the test in .bandit.yaml "
                "with the reason)")


def per_file_ignores(pyproject: Path) -> dict[str, set[str]]:
    """pyproject.toml's [tool.ruff.lint.per-file-ignores]: glob -> ignored codes."""
    config = tomllib.loads(pyproject.read_text())
    table = config.get("tool", {}).get("ruff", {}).get("lint", {}).get("per-file-ignores", {})
    return {pattern: set(codes) for pattern, codes in table.items()}


def noqa_codes(line: str) -> set[str]:
    """Codes a ruff `# noqa: X1, Y2 - reason` comment names; a blanket `# noqa` justifies nothing here."""
    match = NOQA.search(line)
    return {code.strip() for code in match["codes"].split(",")} if match else set()


def is_justified(finding: Finding, source_lines: list[str], ignores: dict[str, set[str]]) -> bool:
    code = finding.ruff_code
    for pattern, codes in ignores.items():
        if code in codes and fnmatch.fnmatch(finding.path, pattern):
            return True
    return any(code in noqa_codes(source_lines[number - 1])
               for number in finding.lines if 0 < number <= len(source_lines))


def findings(report: dict[str, Any], root: Path) -> list[Finding]:
    result = []
    for item in report.get("results", []):
        path = Path(item["filename"])
        relative = (path if path.is_absolute() else root / path).resolve().relative_to(root).as_posix()
        lines = tuple(item.get("line_range") or [item["line_number"]])
        result.append(Finding(item["test_id"], relative, lines, item["issue_severity"], item["issue_confidence"],
                              item["issue_text"]))
    return result


def unjustified(report: dict[str, Any], root: Path = ROOT) -> tuple[list[Finding], int]:
    """Findings nobody justified, and the number that were justified for ruff."""
    ignores = per_file_ignores(root / "pyproject.toml")
    sources: dict[str, list[str]] = {}
    left, accepted = [], 0
    for finding in findings(report, root):
        lines = sources.setdefault(finding.path, (root / finding.path).read_text().splitlines())
        if is_justified(finding, lines, ignores):
            accepted += 1
        else:
            left.append(finding)
    return left, accepted


def main(argv: list[str]) -> int:
    command = [sys.executable, "-m", "bandit", *argv, "--format", "json", "--quiet", "--exit-zero"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        sys.stderr.write(completed.stdout + completed.stderr)
        print("bandit did not produce a report", file=sys.stderr)
        return 2
    problems = [f"{error['filename']}: {error['reason']}" for error in report.get("errors", [])]
    left, accepted = unjustified(report)
    for finding in left:
        print(finding.describe())
    for problem in problems:
        print(f"bandit could not scan {problem}")
    scanned = report.get("metrics", {}).get("_totals", {}).get("loc", 0)
    print(f"bandit: {scanned} lines scanned, {len(left)} unjustified finding(s), {accepted} justified for ruff")
    return 1 if left or problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
