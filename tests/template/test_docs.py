"""The setup and configuration docs agree with the template and with the layer that reads the secret."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = (ROOT / "docs" / "salesforce-setup.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()


def secret_examples() -> list[dict]:
    blocks = re.findall(r"```json\n(.*?)```", SETUP, re.DOTALL)
    return [json.loads(block) for block in blocks if '"flow"' in block]


def test_every_flow_has_an_example():
    config = pytest.importorskip("salesforce_access.config")
    assert {example["flow"] for example in secret_examples()} == set(config.FLOWS)


@pytest.mark.parametrize("example", secret_examples(), ids=lambda e: e["flow"])
def test_secret_examples_are_accepted_by_the_layer(example):
    config = pytest.importorskip("salesforce_access.config")
    secret = config.parse_secret(json.dumps(example))
    assert secret.flow == example["flow"]
    for field, value in example.items():
        got = getattr(secret, field)
        got = got.get_secret_value() if hasattr(got, "get_secret_value") else got
        assert got == (value.strip() if isinstance(value, str) else value), field


def test_every_documented_secret_field_exists_in_the_layer():
    config = pytest.importorskip("salesforce_access.config")
    section = SETUP.split("## 4. The secret", 1)[1]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))
    models = [config.JwtBearerSecret, config.ClientCredentialsSecret, config.UsernamePasswordSecret]
    known = set().union(*(model.model_fields for model in models))
    assert documented == known


def test_configuration_describes_every_parameter_and_variable(template):
    names = list(template["Parameters"]) + list(template["Globals"]["Function"]["Environment"]["Variables"])
    missing = [name for name in names if f"`{name}`" not in CONFIGURATION]
    assert missing == []
    for env in ("default", "dev", "prod"):
        assert f"`{env}`" in CONFIGURATION
