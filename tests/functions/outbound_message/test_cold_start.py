"""The endpoint never talks to Salesforce: its cold start loads neither simple-salesforce nor the layer's client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_importing_the_handler_loads_no_salesforce_client():
    path = os.pathsep.join([str(ROOT / "functions" / "outbound_message"), str(ROOT / "layers" / "salesforce_access")])
    watched = ["simple_salesforce", "zeep", "lxml", "requests", "salesforce_access.access"]
    code = f"import json, sys\nimport outbound_message.handler\nprint(json.dumps([m for m in {watched!r} " \
           "if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": path},
                            capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
