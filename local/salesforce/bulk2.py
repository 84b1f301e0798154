"""Placeholder until the bulk2 resources land."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .http import Router

if TYPE_CHECKING:
    from .app import EmulatorApp


def register(router: Router, app: EmulatorApp) -> None:
    return None
