"""The bandit gate accepts a finding only where the same rule is justified for ruff; everything else fails."""

from __future__ import annotations

from pathlib import Path

from tests.security import bandit_gate


def _repo(tmp_path: Path, source: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ruff.lint.per-file-ignores]\n"tooling/**" = ["S311", "S101"]  # reasons live here\n')
    (tmp_path / "functions").mkdir()
    (tmp_path / "tooling").mkdir()
    (tmp_path / "functions" / "code.py").write_text(source)
    (tmp_path / "tooling" / "stand_in.py").write_text("import random\nassert random.random() < 2\n")
    return tmp_path


def _finding(path: str, test_id: str, lines: list[int]) -> dict:
    return {"filename": path, "test_id": test_id, "line_number": lines[0], "line_range": lines,
            "issue_severity": "MEDIUM", "issue_confidence": "HIGH", "issue_text": f"{test_id} finding"}


def test_only_ruff_justified_findings_are_accepted(tmp_path: Path) -> None:
    root = _repo(tmp_path, "\n".join([
        "import hashlib, random, subprocess",
        "a = random.random()  # noqa: S311 - jitter, not security",
        "b = hashlib.md5(b'x').hexdigest()  # noqa: E501",  # a different rule justifies nothing here
        "c = subprocess.run(  # noqa: S603 - fixed argv",
        "    ['ls'], check=False)",
        "d = random.random()  # noqa",  # a blanket noqa is not a justification
        "e = eval('1')",
    ]))
    report = {"results": [
        _finding("functions/code.py", "B311", [2]),
        _finding("functions/code.py", "B324", [3]),
        _finding("./functions/code.py", "B603", [4, 5]),
        _finding("functions/code.py", "B311", [6]),
        _finding("functions/code.py", "B307", [7]),
        _finding("tooling/stand_in.py", "B311", [2]),  # pyproject's per-file-ignores justify S311 and S101 in tooling/
        _finding("tooling/stand_in.py", "B101", [2]),
    ]}
    left, accepted = bandit_gate.unjustified(report, root)
    assert [(f.path, f.test_id, f.lines[0]) for f in left] == [
        ("functions/code.py", "B324", 3), ("functions/code.py", "B311", 6), ("functions/code.py", "B307", 7)]
    assert accepted == 4
    assert "noqa: S324" in left[0].describe()


def test_noqa_parsing() -> None:
    assert bandit_gate.noqa_codes("x = 1  # noqa: S311, S105 - reason") == {"S311", "S105"}
    assert bandit_gate.noqa_codes("x = 1  # noqa:S101") == {"S101"}
    assert bandit_gate.noqa_codes("x = 1  # noqa") == set()
    assert bandit_gate.noqa_codes("x = '# not a comment'") == set()
