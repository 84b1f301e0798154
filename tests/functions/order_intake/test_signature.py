"""Request authentication of POST /orders and /orders/async: refusing what they must refuse (401), key rotation,
an unreadable secret. The HMAC contract itself: tests/layers/edge_kit/test_signatures.py."""

from __future__ import annotations

import io
import json
import logging
import time

import boto3
import pytest

from edge_kit.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from salesforce_access.observability import logger

from .conftest import SIGNING_KEY, api_calls, make_order

# -- through the API --------------------------------------------------------------------------------------


def test_a_tampered_body_is_refused_before_anything_is_parsed_or_written(salesforce, products, caller):
    order = make_order(products)
    signed_for = json.dumps(order).encode()
    tampered = json.dumps({**order, "lines": order["lines"] * 2}).encode()
    headers = {"Content-Type": "application/json", **caller_headers(signed_for)}

    reply = caller.post(tampered, headers=headers)

    assert reply.status == 401
    assert reply.body == {"error": "unauthorized", "message": "signature does not match"}
    assert "WWW-Authenticate" in reply.headers
    assert api_calls(salesforce) == []


def caller_headers(body: bytes, timestamp: int | None = None, key: str = SIGNING_KEY) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(key, ts, body)}


@pytest.mark.parametrize("path", ["/orders", "/orders/async"])
def test_replayed_timestamps_wrong_keys_and_missing_headers_are_refused(salesforce, products, caller, stack, path):
    order = make_order(products)
    body = json.dumps(order if path == "/orders" else {"orders": [order]}).encode()
    cases = {
        "replayed after 6 minutes": caller_headers(body, int(time.time()) - 360),
        "wrong key": caller_headers(body, key="not-the-shared-secret-123"),
        "no signature": {TIMESTAMP_HEADER: str(int(time.time()))},
        "no headers at all": {},
    }
    for name, headers in cases.items():
        reply = caller.post(body, path, headers=headers)
        assert reply.status == 401, name
        assert reply.body["error"] == "unauthorized", name
    assert api_calls(salesforce) == []
    assert stack.count() == 0
    # and the same body, signed now, goes through
    assert caller.post(body, path).status in (201, 202)


def test_a_rotated_secret_is_picked_up_once_the_cache_expires(salesforce, products, caller, stack, monkeypatch):
    monkeypatch.setenv("SIGNING_SECRET_MAX_AGE", "0")
    from order_intake import api

    api.reset()
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.secret_arn,
        SecretString=json.dumps({"current": "rotated-key-0123456789", "previous": SIGNING_KEY}))

    assert caller.post(make_order(products), key="rotated-key-0123456789").status == 201
    assert caller.post(make_order(products)).status == 201  # the previous key still works during the rotation


def test_an_unreadable_signing_secret_is_a_503_not_a_401_or_a_500(salesforce, caller, monkeypatch):
    monkeypatch.setenv("ORDER_SIGNING_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gone-AbCdEf")
    from order_intake import api

    api.reset()
    reply = caller.post({"order_number": "X"})

    assert reply.status == 503
    assert reply.body["error"] == "temporarily_unavailable"
    assert "Retry-After" in reply.headers


def test_no_secret_or_token_ever_reaches_a_log_line_or_an_answer(salesforce, products, caller, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    logger.setLevel("DEBUG")
    try:
        answers = [caller.post(make_order(products)).raw,
                   caller.post(json.dumps(make_order(products)), headers=caller_headers(b"other")).raw,
                   caller.post(make_order(products), key="guessed-key-0123456789").raw]
    finally:
        logger.removeHandler(handler)
        logger.setLevel("INFO")
    output = stream.getvalue() + "".join(answers)
    assert "order processed" in output  # the log was really captured
    assert "bad signature" in output
    token = salesforce_token()
    for secret in (SIGNING_KEY, "guessed-key-0123456789", token):
        assert secret not in output


def salesforce_token() -> str:
    from salesforce_access import get_access

    return get_access().tokens.current().value
