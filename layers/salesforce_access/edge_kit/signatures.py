"""HMAC-SHA256 request signatures: the contract every signed entry point verifies (docs/remote-call-in.md).

A caller sends two headers:

- ``X-Signature-Timestamp``: the Unix time in seconds when it signed the request;
- ``X-Signature``: ``v1=`` followed by the lowercase hex HMAC-SHA256, keyed with the shared secret (its UTF-8
  bytes), of ``v1:{timestamp}:`` followed by the raw request body bytes, exactly as sent.

A request is accepted when the timestamp is within `tolerance` seconds of the receiver's clock (either side)
and the signature matches one of the active keys (the current one, or the previous one during a rotation),
compared in constant time. Written by hand because it is a dozen lines over `hmac`, and a library for it
would be one more dependency for every function.

``SignedRequests`` is the Powertools resolver middleware that POST /orders and POST /shipments/events put in
front of their routes: it reads the raw body (413 over the limit), reads the keys through Powertools
parameters (cached for ``secret_max_age``; 503 with Retry-After when the secret cannot be read), and answers
401 with WWW-Authenticate before the body is ever parsed. The verified bytes are in ``app.context["raw_body"]``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler.middlewares import BaseMiddlewareHandler

from edge_kit.http_api import ApiError, raw_body

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

TIMESTAMP_HEADER = "X-Signature-Timestamp"
SIGNATURE_HEADER = "X-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
WWW_AUTHENTICATE = f'HMAC-SHA256 headers="{TIMESTAMP_HEADER} {SIGNATURE_HEADER}"'

__all__ = ["DEFAULT_TOLERANCE_SECONDS", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "SignatureError", "SignedRequests",
           "SigningPolicy", "parse_keys", "sign", "signed_headers", "verify"]


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
    if not timestamp or not signature:
        missing = [name for name, value in ((TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, signature)) if not value]
        raise SignatureError(f"missing header {' and '.join(missing)}")
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


# -- as resolver middleware ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SigningPolicy:
    """Where the keys are and how strict to be; built from each function's settings on every request."""

    secret_arn: str
    secret_max_age: int = 300  # seconds the keys are cached: a rotation is picked up within this time
    tolerance: int = DEFAULT_TOLERANCE_SECONDS
    max_body_bytes: int = 5 * 1024 * 1024
    retry_after: int = 5  # told to the caller when the secret cannot be read


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE}


class SignedRequests(BaseMiddlewareHandler):
    """Verify the request's signature before the route runs (401 otherwise); the route reads app.context["raw_body"].

    ``policy`` is called per request (settings are read lazily and tests reset them); ``clock`` is the
    receiver's clock for the replay window, an attribute so tests can move time.
    """

    def __init__(self, policy: Callable[[], SigningPolicy], *, clock: Callable[[], float] = time.time):
        super().__init__()
        self.policy = policy
        self.clock = clock

    def handler(self, app: ApiGatewayResolver, next_middleware: NextMiddleware) -> Response:
        from aws_lambda_powertools.metrics import MetricUnit

        from salesforce_access.observability import logger, metrics

        policy = self.policy()
        body = raw_body(app.current_event, policy.max_body_bytes)
        try:
            verify(app.current_event.headers or {}, body, signing_keys(policy), tolerance=policy.tolerance,
                   now=self.clock)
        except SignatureError as exc:
            metrics.add_metric(name="SignatureRejected", unit=MetricUnit.Count, value=1)
            logger.warning("request refused: bad signature", extra={"reason": str(exc)})
            raise Unauthorized(str(exc)) from None
        app.append_context(raw_body=body)
        return next_middleware(app)


def signing_keys(policy: SigningPolicy) -> list[str]:
    """The active keys, read through Powertools parameters (cached); 503 with Retry-After if unreadable."""
    from aws_lambda_powertools.utilities import parameters
    from botocore.exceptions import BotoCoreError, ClientError

    from salesforce_access.observability import logger

    try:
        return parse_keys(str(parameters.get_secret(policy.secret_arn, max_age=policy.secret_max_age)))
    except (parameters.exceptions.GetParameterError, BotoCoreError, ClientError, ValueError) as exc:
        # the reason goes to the logs (it names no key material); the caller only learns to retry
        logger.error("signing secret unavailable", extra={"error": type(exc).__name__, "detail": str(exc)[:200]})
        raise ApiError("request authentication is temporarily unavailable", status=503,
                       code="temporarily_unavailable", retry_after=policy.retry_after) from None
