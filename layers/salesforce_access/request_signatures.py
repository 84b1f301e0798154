"""HMAC-SHA256 request signatures: the contract every webhook of this project verifies (docs/remote-call-in.md).

A caller sends two headers:

- ``X-Signature-Timestamp``: the Unix time in seconds when it signed the request;
- ``X-Signature``: ``v1=`` followed by the lowercase hex HMAC-SHA256, keyed with the shared secret (its UTF-8
  bytes), of ``v1:{timestamp}:`` followed by the raw request body bytes, exactly as sent.

A request is accepted when the timestamp is within `tolerance` seconds of the receiver's clock (either side)
and the signature matches one of the active keys (the current one, or the previous one during a rotation),
compared in constant time. Written by hand because it is a dozen lines over `hmac`, and a library for it
would be one more dependency for every function.

It ships in the shared layer beside ``salesforce_access`` (it is not Salesforce code) so that every signed
entry point (POST /orders, POST /shipments/events) verifies with the same code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence

TIMESTAMP_HEADER = "X-Signature-Timestamp"
SIGNATURE_HEADER = "X-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """The request is not authenticated; the message says why without revealing anything secret."""


def sign(key: str, timestamp: int | str, body: bytes) -> str:
    """The value of the X-Signature header for `body` signed at `timestamp` (callers and tests use it)."""
    message = f"{SCHEME}:{timestamp}:".encode() + body
    return f"{SCHEME}=" + hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(key: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Both headers for a request, signed now unless `timestamp` is given."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(key, ts, body)}


def parse_keys(secret: str) -> list[str]:
    """The active keys from the secret's value: a plain string, or JSON ``{"current": ..., "previous": ...}``."""
    text = secret.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError("the signing secret is not valid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("current"), str):
            raise ValueError("the signing secret must hold a 'current' key")
        found = [key for key in (data["current"], data.get("previous")) if isinstance(key, str) and key]
    else:
        found = [text] if text else []
    if not found or any(len(key) < 16 for key in found):
        raise ValueError("the signing secret must hold a key of at least 16 characters ('current')")
    return found


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def verify(
    headers: Mapping[str, str],
    body: bytes,
    keys: Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: Callable[[], float] = time.time,
) -> None:
    """Raise SignatureError unless the request carries a fresh, valid signature from one of `keys`."""
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    missing = [name for name, value in ((TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, signature)) if not value]
    if missing:
        raise SignatureError(f"missing header {' and '.join(missing)}")
    assert timestamp is not None  # noqa: S101 - narrowed by the check above
    assert signature is not None  # noqa: S101
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be a Unix time in seconds")
    if abs(now() - int(timestamp)) > tolerance:
        raise SignatureError(f"{TIMESTAMP_HEADER} is outside the {tolerance} s window: sign each request anew")
    candidates = [part.strip() for part in signature.split(",") if part.strip().startswith(f"{SCHEME}=")]
    if not candidates:
        raise SignatureError(f"{SIGNATURE_HEADER} must be '{SCHEME}=' followed by a hex HMAC-SHA256")
    expected = [sign(key, timestamp, body) for key in keys]
    # compare every pair so the time taken does not depend on which key (or which byte) matched
    matched = False
    for candidate in candidates:
        for value in expected:
            matched |= hmac.compare_digest(candidate.encode(), value.encode())
    if not matched:
        raise SignatureError("signature does not match")
