"""The fault matrix in docs/reliability.md stays true: every fault against every pattern, every cited test exists
(read from the source, nothing imported), every test of this suite is cited, and an expected failure is never
passed off as a pass."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
PATTERNS = ["1 Request and Reply", "2 Fire and Forget", "3 Batch sync", "4 Remote Call-In", "5 UI Update"]
FAULTS = [
    "Session expiry in the middle of work", "Salesforce 503", "UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED",
    "Slow answers past the timeouts", "Dropped connections", "ERP / billing / logistics down",
    "The invocation running out of time in the middle of a batch", "SQS redelivery",
    "The same event delivered twice", "A worker killed in the middle of its work",
]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[^\]]*\])?`")


def section(text: str, heading: str) -> str:
    """The body of a level-2 section, up to the next level-2 heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, f"docs/reliability.md has no '## {heading}' section"
    return match.group(1)


def matrix() -> dict[str, dict[str, str]]:
    """fault -> pattern -> cell, from the one table of the Fault injection section."""
    rows = [line for line in section(DOC.read_text(), "Fault injection").splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows]
    header, separator, body = split[0], split[1], split[2:]
    assert header == ["Fault", *PATTERNS]
    assert all(set(cell) <= {"-", ":"} for cell in separator)
    assert all(len(row) == len(header) for row in body), "a row has the wrong number of cells"
    return {row[0]: dict(zip(PATTERNS, row[1:], strict=True)) for row in body}


@cache
def declared_tests(path: str) -> dict[str, bool]:
    """Module-level test functions of a file -> whether they are marked xfail."""
    tree = ast.parse((ROOT / path).read_text())
    return {node.name: any("xfail" in ast.unparse(d) for d in node.decorator_list)
            for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def cells() -> list[tuple[str, str, str]]:
    return [(fault, pattern, cell) for fault, row in matrix().items() for pattern, cell in row.items()]


def test_every_fault_is_a_row_and_every_pattern_a_column():
    assert list(matrix()) == FAULTS


@pytest.mark.parametrize(("fault", "pattern", "cell"), cells(), ids=lambda value: value[:24])
def test_each_cell_cites_tests_or_says_why_the_fault_does_not_apply(fault, pattern, cell):
    references = REFERENCE.findall(cell)
    if cell.startswith("N/A"):
        assert not references, f"{fault} / {pattern}: N/A yet cites tests"
        assert re.match(r"N/A: \S.{15,}", cell), f"{fault} / {pattern}: N/A needs a one-line reason"
        return
    assert references, f"{fault} / {pattern}: neither tests nor N/A"
    for path, name in references:
        assert (ROOT / path).is_file(), f"{fault} / {pattern}: no file {path}"
        assert name in declared_tests(path), f"{fault} / {pattern}: {path} has no test {name}"
        if declared_tests(path)[name]:
            assert "xfail" in cell, f"{fault} / {pattern}: {name} is an expected failure; the cell must say so"


def test_every_test_of_the_suite_is_in_the_table():
    cited = {(path, name) for *_, cell in cells() for path, name in REFERENCE.findall(cell)}
    here = Path(__file__).resolve().parent
    suite = {(f"tests/reliability/{module.name}", name) for module in sorted(here.glob("test_*.py"))
             if module.name != Path(__file__).name
             for name in declared_tests(f"tests/reliability/{module.name}")}
    assert sorted(suite - cited) == []
