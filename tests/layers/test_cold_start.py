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
    # Also the control for the probes above: they do see a heavy module once something imports it.
    loaded = run_isolated(
        "import json, sys\n"
        "from salesforce_access import SalesforceAccess\n"
        "from salesforce_access.auth import AccessToken\n"
        "access = SalesforceAccess({'flow': 'client_credentials', 'client_id': 'id', 'client_secret': 's3cret',\n"
        "                           'login_url': 'https://acme.my.salesforce.com'})\n"
        "access.tokens._token = AccessToken('00D000000000001!token', 'https://acme.my.salesforce.com')\n"
        "before = 'simple_salesforce' in sys.modules\n"
        "client = access.client\n"
        "print(json.dumps({'before': before, 'after': 'simple_salesforce' in sys.modules,\n"
        "                  'shared_session': client.session is access.session}))\n"
    )
    assert loaded == {"before": False, "after": True, "shared_session": True}
