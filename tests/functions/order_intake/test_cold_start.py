"""Importing the handlers loads neither simple-salesforce nor its dependencies (cold start)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_importing_the_handlers_loads_no_salesforce_client():
    code = ("import sys; import order_intake.api, order_intake.worker; "
            "print(sorted(m for m in ('simple_salesforce', 'zeep', 'lxml', 'jwt') if m in sys.modules))")
    paths = [str(ROOT / "functions" / "order_intake"), str(ROOT / "layers" / "salesforce_access")]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                            env={"PYTHONPATH": ":".join(paths), "AWS_DEFAULT_REGION": "eu-west-1",
                                 "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "[]"
