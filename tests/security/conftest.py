"""Fixtures for the security tests: templates expanded by SAM's own translator, as they would be deployed."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SAM_PYTHON = ROOT / ".venv" / "tools" / "sam-cli" / "bin" / "python"


def translate(template: Path) -> dict[str, Any]:
    """CloudFormation for a SAM template (sam_translate.py under SAM CLI's interpreter, which has samtranslator)."""
    if not SAM_PYTHON.exists():
        pytest.skip("SAM CLI's virtual environment is missing: run `make sam-tools` (make test does)")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}
    completed = subprocess.run([str(SAM_PYTHON), str(HERE / "sam_translate.py"), str(template)], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, f"SAM could not translate {template.name}:\n{completed.stderr[-3000:]}"
    return json.loads(completed.stdout)


@pytest.fixture(scope="session")
def translated() -> dict[str, Any]:
    """template.yaml as CloudFormation: SAM policy templates, event sources and destinations expanded."""
    return translate(ROOT / "template.yaml")


@pytest.fixture(scope="session")
def translate_fixture() -> Callable[[str], dict[str, Any]]:
    cache: dict[str, dict[str, Any]] = {}

    def load(name: str) -> dict[str, Any]:
        if name not in cache:
            cache[name] = translate(HERE / "fixtures" / name)
        return cache[name]

    return load
