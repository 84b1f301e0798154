"""One Salesforce API version everywhere: what the layer calls by default is what the metadata is written for.

The layer's default (used when the secret names no `api_version`), any template parameter naming a version,
the Salesforce project's sourceApiVersion and every metadata file's <apiVersion> must agree, and the emulator
the suite runs against must serve that version (it is its own default too, so the demo exercises it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from salesforce_access.config import DEFAULT_API_VERSION
from salesforce_emulator.app import DEFAULT_API_VERSION as EMULATOR_DEFAULT
from salesforce_emulator.app import SUPPORTED_VERSIONS

ROOT = Path(__file__).resolve().parents[2]
SALESFORCE = ROOT / "salesforce"


def versions_in_use(template: dict[str, Any]) -> dict[str, str]:
    found = {"layer default (salesforce_access.config)": DEFAULT_API_VERSION,
             "salesforce/sfdx-project.json sourceApiVersion":
                 json.loads((SALESFORCE / "sfdx-project.json").read_text())["sourceApiVersion"],
             "emulator default": EMULATOR_DEFAULT}
    for name, parameter in template["Parameters"].items():
        if "apiversion" in name.lower() and "Default" in parameter:
            found[f"template.yaml {name}"] = str(parameter["Default"])
    for path in sorted(SALESFORCE.rglob("*.xml")):
        for version in re.findall(r"<apiVersion>\s*([\d.]+)\s*</apiVersion>", path.read_text()):
            found[str(path.relative_to(ROOT))] = version
    return found


def test_one_api_version_everywhere(template: dict[str, Any]) -> None:
    found = versions_in_use(template)
    assert len(set(found.values())) == 1, f"Salesforce API versions differ: {found}"


def test_the_emulator_serves_that_version(template: dict[str, Any]) -> None:
    assert DEFAULT_API_VERSION in SUPPORTED_VERSIONS
    assert re.fullmatch(r"\d{2,3}\.0", DEFAULT_API_VERSION)
