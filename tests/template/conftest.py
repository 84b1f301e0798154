"""Fixtures for the template tests: template.yaml read by a YAML loader that knows CloudFormation's short
tags (cfn-lint's decoder is not in the main venv), and samconfig.toml."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short tags (!Ref X -> {"Ref": "X"}, !Sub s -> {"Fn::Sub": s})."""


def _construct(tag: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {"Ref" if tag == "Ref" else "Condition" if tag == "Condition" else f"Fn::{tag}": value}

    return construct


for _tag in ("Ref", "Condition", "Sub", "GetAtt", "If", "Equals", "Not", "And", "Or", "Join", "Select",
             "Split", "FindInMap", "ImportValue", "Base64", "Cidr", "GetAZs", "Transform", "ToJsonString",
             "Length"):  # fmt: skip
    CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


def load_template(text: str) -> dict[str, Any]:
    return yaml.load(text, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader subclass


@pytest.fixture(scope="session")
def load_cfn() -> Callable[[str], dict[str, Any]]:
    return load_template


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template((ROOT / "template.yaml").read_text())


@pytest.fixture(scope="session")
def samconfig() -> dict[str, Any]:
    return tomllib.loads((ROOT / "samconfig.toml").read_text())
