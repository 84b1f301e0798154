"""The consumer's cold start loads no simple-salesforce; the callback reaches Salesforce without it too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ["simple_salesforce", "zeep", "lxml"]


def loaded_after(code: str) -> list[str]:
    """Modules of HEAVY (plus the layer's access module) loaded in a fresh interpreter after `code`."""
    path = os.pathsep.join([str(ROOT / "functions" / "billing_consumer"), str(ROOT / "layers" / "salesforce_access")])
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {[*HEAVY, 'salesforce_access.access']!r} " \
            "if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": path},
                            capture_output=True, text=True, check=True, timeout=60)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_handler_loads_no_salesforce_client():
    assert loaded_after("import billing_consumer.handler") == []


def test_the_callback_path_loads_the_layer_but_not_simple_salesforce():
    # What SalesforceContracts.record_billing imports on its first call.
    loaded = loaded_after("import billing_consumer.handler\nfrom salesforce_access import get_access, NotFound")
    assert loaded == ["salesforce_access.access"]


def test_the_probe_sees_simple_salesforce_when_it_is_imported():
    assert "simple_salesforce" in loaded_after("import simple_salesforce")
