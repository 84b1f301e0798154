"""The in-process translation is the one SAM CLI makes: same output as SAM CLI's own samtranslator.

The project's venv pins samtranslator (requirements/dev.lock) and SAM CLI brings its own, possibly newer,
in .venv/tools/sam-cli. The policy checks use the former; this test fails when the two disagree on any
template the checks read, so a pin that falls behind in a way that matters is noticed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.security.sam_translate import translate

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SAM_PYTHON = ROOT / ".venv" / "tools" / "sam-cli" / "bin" / "python"


@pytest.mark.parametrize("template", [ROOT / "template.yaml", HERE / "fixtures" / "overprivileged.yaml"],
                         ids=lambda path: path.name)
def test_sam_cli_translates_the_same(template: Path) -> None:
    if not SAM_PYTHON.exists():
        pytest.skip("SAM CLI's virtual environment is missing: run `make sam-tools` (make test does)")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}
    completed = subprocess.run(
        [str(SAM_PYTHON), str(HERE / "sam_translate.py"), str(template)], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads(completed.stdout) == translate(template)
