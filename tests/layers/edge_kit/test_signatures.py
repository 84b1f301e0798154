"""edge_kit.signatures: the HMAC contract callers implement (docs/remote-call-in.md), and the resolver middleware
that enforces it (401 with WWW-Authenticate, 413 first, 503 when the secret is unreadable), with an injected clock
and the keys in moto's Secrets Manager."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from edge_kit.http_api import json_response, register_error_handlers
from edge_kit.signatures import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    SignedRequests,
    SigningPolicy,
    parse_keys,
    sign,
    signed_headers,
    verify,
)
from stand_ins.logistics.gateway import rest_proxy_event

KEY = "whsec-kit-test-0123456789abcdef"
NEW_KEY = "whsec-kit-new-fedcba9876543210"
BODY = b'{"order_number": "WEB-1"}'
NOW = 1_700_000_000


# -- the contract ---------------------------------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_over_version_timestamp_and_raw_body():
    expected = hmac.new(KEY.encode(), b"v1:1700000000:" + BODY, hashlib.sha256).hexdigest()
    assert sign(KEY, 1700000000, BODY) == f"v1={expected}"
    assert signed_headers(KEY, BODY, NOW) == {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: f"v1={expected}"}


def test_a_fresh_valid_signature_is_accepted_whatever_the_header_case():
    headers = {TIMESTAMP_HEADER.lower(): str(NOW - 299), SIGNATURE_HEADER.upper(): sign(KEY, NOW - 299, BODY)}
    verify(headers, BODY, [KEY], now=lambda: NOW)


@pytest.mark.parametrize(("change", "reason"), [
    ({"body": BODY + b" "}, "does not match"),
    ({"key": "another-key-0123456789"}, "does not match"),
    ({"age": 301}, "outside the 300 s window"),
    ({"age": -301}, "outside the 300 s window"),
    ({"drop": TIMESTAMP_HEADER}, f"missing header {TIMESTAMP_HEADER}"),
    ({"drop": SIGNATURE_HEADER}, f"missing header {SIGNATURE_HEADER}"),
    ({"timestamp": "17e8"}, "Unix time in seconds"),
    ({"signature": "sha256=abc"}, "must be 'v1='"),
])
def test_anything_else_is_refused_with_a_reason(change, reason):
    ts = NOW - change.get("age", 0)
    headers = {TIMESTAMP_HEADER: change.get("timestamp", str(ts)),
               SIGNATURE_HEADER: change.get("signature", sign(change.get("key", KEY), ts, BODY))}
    headers.pop(change.get("drop", ""), None)
    with pytest.raises(SignatureError, match=reason):
        verify(headers, change.get("body", BODY), [KEY], now=lambda: NOW)


def test_during_a_rotation_both_the_current_and_the_previous_key_are_accepted():
    keys = parse_keys(json.dumps({"current": NEW_KEY, "previous": KEY}))
    assert keys == [NEW_KEY, KEY]
    for key in keys:
        verify(signed_headers(key, BODY, NOW), BODY, keys, now=lambda: NOW)


@pytest.mark.parametrize("secret", ["", "short", '{"previous": "only-a-previous-key-123"}', "{broken json"])
def test_a_weak_or_malformed_secret_is_refused(secret):
    with pytest.raises(ValueError, match="signing secret"):
        parse_keys(secret)


# -- as resolver middleware -------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secret_arn(aws: None) -> str:
    return boto3.client("secretsmanager").create_secret(Name="kit/signing", SecretString=KEY)["ARN"]


@pytest.fixture
def signed_app(secret_arn: str) -> tuple[APIGatewayRestResolver, SignedRequests, list[bytes], dict[str, Any]]:
    """A resolver whose one route is behind the middleware; the route records the bytes it was given."""
    policy: dict[str, Any] = {"secret_arn": secret_arn, "secret_max_age": 0, "max_body_bytes": 64, "retry_after": 7}
    middleware = SignedRequests(lambda: SigningPolicy(**policy), clock=Clock(NOW))
    app = APIGatewayRestResolver()
    register_error_handlers(app, not_found_message="only POST /hook")
    seen: list[bytes] = []

    @app.post("/hook", middlewares=[middleware])
    def hook() -> Response:
        seen.append(app.context["raw_body"])
        return json_response(202, {"ok": True})

    return app, middleware, seen, policy


def post(app: APIGatewayRestResolver, context: Any, body: bytes, headers: dict[str, str],
         base64_body: bool = False) -> tuple[int, dict[str, Any], dict[str, str]]:
    result = app.resolve(rest_proxy_event("POST", "/hook", body=body, headers=headers, base64_body=base64_body),
                         context)
    answer = {**(result.get("headers") or {}), **{k: v[-1] for k, v in (result.get("multiValueHeaders") or {}).items()}}
    return result["statusCode"], json.loads(result["body"]), answer


def test_a_signed_request_reaches_the_route_with_the_verified_bytes(signed_app, lambda_context):
    app, _, seen, _ = signed_app
    assert post(app, lambda_context, BODY, signed_headers(KEY, BODY, NOW))[0] == 202
    assert post(app, lambda_context, BODY, signed_headers(KEY, BODY, NOW), base64_body=True)[0] == 202
    assert seen == [BODY, BODY]


def test_a_bad_signature_is_a_401_with_www_authenticate_and_the_route_never_runs(signed_app, lambda_context):
    app, _, seen, _ = signed_app
    status, body, headers = post(app, lambda_context, BODY + b" ", signed_headers(KEY, BODY, NOW))
    assert (status, body) == (401, {"error": "unauthorized", "message": "signature does not match"})
    assert headers["WWW-Authenticate"] == 'HMAC-SHA256 headers="X-Signature-Timestamp X-Signature"'
    assert seen == []


def test_a_captured_request_replayed_after_the_window_is_refused(signed_app, lambda_context):
    app, middleware, seen, _ = signed_app
    headers = signed_headers(KEY, BODY, NOW)
    assert post(app, lambda_context, BODY, headers)[0] == 202
    middleware.clock = Clock(NOW + 301)
    status, body, _ = post(app, lambda_context, BODY, headers)
    assert (status, body["error"]) == (401, "unauthorized")
    assert "outside the 300 s window" in body["message"]
    assert len(seen) == 1


def test_a_rotation_is_picked_up_and_the_previous_key_still_works(signed_app, secret_arn, lambda_context):
    app, _, _, _ = signed_app
    boto3.client("secretsmanager").put_secret_value(SecretId=secret_arn,
                                                    SecretString=json.dumps({"current": NEW_KEY, "previous": KEY}))
    for key in (NEW_KEY, KEY):
        assert post(app, lambda_context, BODY, signed_headers(key, BODY, NOW))[0] == 202
    assert post(app, lambda_context, BODY, signed_headers("retired-key-0123456789", BODY, NOW))[0] == 401


def test_an_oversized_body_is_a_413_before_the_signature_is_even_checked(signed_app, lambda_context):
    app, _, _, _ = signed_app
    status, body, _ = post(app, lambda_context, b"x" * 65, {})
    assert (status, body["error"]) == (413, "payload_too_large")


@pytest.mark.parametrize("problem", ["missing", "weak"])
def test_an_unreadable_or_unusable_secret_is_a_503_with_retry_after_not_a_401(signed_app, secret_arn, lambda_context,
                                                                              problem):
    app, _, seen, policy = signed_app
    if problem == "missing":
        policy["secret_arn"] = secret_arn + "-gone"
    else:
        boto3.client("secretsmanager").put_secret_value(SecretId=secret_arn, SecretString="short")
    status, body, headers = post(app, lambda_context, BODY, signed_headers(KEY, BODY, NOW))
    assert (status, body["error"], headers["Retry-After"]) == (503, "temporarily_unavailable", "7")
    assert "short" not in json.dumps(body)
    assert seen == []
