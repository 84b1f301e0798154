"""Scrubs credentials from text before it is logged or raised.

Defence in depth: the layer never puts tokens, secrets or keys into messages on purpose, but a
Salesforce or library message could echo one, so every log record and exception goes through here.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "***"

_known: set[str] = set()
_lock = threading.Lock()

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys, whole.
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), MASK),
    # Authorization header values (credential-like: long, with a digit or "!", so prose is left alone).
    (re.compile(r"(?i)\b(bearer|oauth|basic)\s+(?=[A-Za-z._~+/=-]*[0-9!])[A-Za-z0-9!._~+/=-]{16,}"), r"\1 " + MASK),
    # Salesforce access tokens look like <15-char org id>!<opaque>.
    (re.compile(r"\b00D[A-Za-z0-9]{12,15}![A-Za-z0-9._~+/=-]{16,}"), MASK),
    # key=value / "key": "value" pairs of credential fields (form bodies, JSON, reprs).
    (
        re.compile(
            r"""(?ix)
            (["']?(?:access_token|refresh_token|client_secret|password|security_token|assertion|private_key
                  |authorization|session_id|sessionid)["']?\s*[:=]\s*["']?)
            ([^"'&\s,}]+)"""
        ),
        r"\1" + MASK,
    ),
)


def register_secret(value: str | None) -> None:
    """Remember a credential value so that it is masked wherever it appears later."""
    if not value or len(value) < 6:
        return
    with _lock:
        _known.add(value)
        # PEM keys are also masked line by line, in case one line ends up alone in a message.
        for line in value.splitlines():
            line = line.strip()
            if len(line) >= 16 and not line.startswith("-----"):
                _known.add(line)


def redact(text: str) -> str:
    """Return `text` with registered credentials and credential-shaped substrings masked."""
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """Apply `redact` to every string inside a JSON-like structure (used on log records)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value
