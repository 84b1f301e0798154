"""Fixtures for the security tests: templates expanded by SAM's own translator, as they would be deployed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.security.sam_translate import translate

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


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
