"""Importing the layer stays cheap: heavy libraries load only when a client or token is needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LAYER = Path(__file__).resolve().parents[2] / "layers" / "salesforce_access"
HEAVY = ["simple_salesforce", "zeep", "lxml", "cryptography", "jwt"]


def run_isolated(code: str) -> dict:
    """Run `code` in a fresh interpreter with only the layer on PYTHONPATH; it prints a JSON dict."""
    env = {**os.environ, "PYTHONPATH": str(LAYER)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                            timeout=60)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_does_not_load_heavy_modules() -> None:
    loaded = run_isolated(
        "import json, sys\n"
        "import salesforce_access\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    assert loaded == []


def test_creating_an_access_object_loads_nothing_and_calls_nothing() -> None:
    # No secret id and no network: construction and the public names must not need either.
    loaded = run_isolated(
        "import json, sys, socket\n"
        "def refuse(*a, **k): raise AssertionError('network used at init')\n"
        "socket.socket.connect = refuse\n"
        "from salesforce_access import SalesforceAccess, get_access, soql, quote_soql, choose_api\n"
        "from salesforce_access.observability import logger, tracer, metrics\n"
        "access = SalesforceAccess('arn:aws:secretsmanager:eu-west-1:123456789012:secret:sf')\n"
        "access.collections, access.bulk\n"
        f"print(json.dumps([m for m in {HEAVY!r} + ['boto3'] if m in sys.modules]))\n"
    )
    assert loaded == []


def test_the_client_is_what_imports_simple_salesforce() -> None:
    # Control for the two tests above: the same probe does see simple_salesforce once it is imported.
    loaded = run_isolated(
        "import json, sys\n"
        "import salesforce_access\n"
        "import simple_salesforce\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    assert "simple_salesforce" in loaded
