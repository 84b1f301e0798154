"""edge_kit.http_api: the one error envelope on a real Powertools resolver, the raw-body rules, 415 for non-JSON."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from edge_kit.http_api import (
    ApiError,
    error_response,
    is_json,
    json_only,
    json_response,
    raw_body,
    register_error_handlers,
)
from edge_kit.settings import ConfigurationError
from stand_ins.logistics.gateway import rest_proxy_event


class Conflict(ApiError):
    status = 409
    code = "order_busy"
    retry_after = 2


def make_app(**options: Any) -> tuple[APIGatewayRestResolver, list[ApiError]]:
    app = APIGatewayRestResolver()
    seen: list[ApiError] = []
    register_error_handlers(app, not_found_message="only POST /things is served here", on_error=seen.append,
                            **options)

    @app.post("/things", middlewares=[json_only])
    def things() -> Response:
        body = raw_body(app.current_event, 16)
        text = body.decode(errors="replace")
        if text == "busy":
            raise Conflict("someone else is changing it")
        if text == "bad":
            raise ApiError("2 invalid field(s)", status=400, code="invalid_request",
                           fields=[{"field": "a", "message": "required"}, {"field": "b", "message": "too long"}])
        if text == "settings":
            raise ConfigurationError("invalid or missing environment variable(s): THING_TABLE")
        if text == "bug":
            raise KeyError("secret-internal-detail")
        return json_response(200, {"bytes": len(body)})

    return app, seen


def call(app: APIGatewayRestResolver, lambda_context: Any, body: bytes | None, *, method: str = "POST",
         path: str = "/things", headers: dict[str, str] | None = None, base64_body: bool = False) -> tuple[
             int, dict[str, Any], dict[str, str]]:
    event = rest_proxy_event(method, path, body=body, base64_body=base64_body,
                             headers={"Content-Type": "application/json"} if headers is None else headers)
    result = app.resolve(event, lambda_context)
    answer = {**(result.get("headers") or {}), **{k: v[-1] for k, v in (result.get("multiValueHeaders") or {}).items()}}
    return result["statusCode"], json.loads(result["body"]), answer


def test_an_api_error_is_its_status_code_message_and_extra_keys(lambda_context):
    app, seen = make_app()
    status, body, headers = call(app, lambda_context, b"bad")
    assert status == 400
    assert body == {"error": "invalid_request", "message": "2 invalid field(s)",
                    "fields": [{"field": "a", "message": "required"}, {"field": "b", "message": "too long"}]}
    assert headers["Content-Type"] == "application/json"
    assert [e.code for e in seen] == ["invalid_request"]


def test_an_error_that_knows_when_to_come_back_says_retry_after(lambda_context):
    status, body, headers = call(make_app()[0], lambda_context, b"busy")
    assert (status, body["error"], headers["Retry-After"]) == (409, "order_busy", "2")


def test_an_unknown_route_is_a_json_404(lambda_context):
    status, body, _ = call(make_app()[0], lambda_context, None, method="GET", path="/elsewhere")
    assert (status, body) == (404, {"error": "not_found", "message": "only POST /things is served here"})


def test_a_bug_is_a_500_with_the_request_id_and_nothing_of_the_exception(lambda_context):
    status, body, _ = call(make_app()[0], lambda_context, b"bug")
    assert status == 500
    assert body == {"error": "internal_error", "message": "internal error; it has been logged",
                    "reference": lambda_context.aws_request_id}
    assert "secret-internal-detail" not in json.dumps(body)


def test_bad_settings_are_a_500_naming_no_variable_to_the_caller(lambda_context):
    internal: list[Exception] = []
    app, _ = make_app(on_internal=internal.append)
    status, body, _ = call(app, lambda_context, b"settings")
    assert (status, body["error"], body["reference"]) == (500, "configuration_error", lambda_context.aws_request_id)
    assert "THING_TABLE" not in body["message"]
    assert [type(e) for e in internal] == [ConfigurationError]


def test_an_api_can_style_the_codes_and_add_headers_to_every_error(lambda_context):
    app, _ = make_app(code=str.upper, headers={"Cache-Control": "no-store"})
    for body, status, code in ((b"busy", 409, "ORDER_BUSY"), (b"bug", 500, "INTERNAL_ERROR")):
        got_status, got, headers = call(app, lambda_context, body)
        assert (got_status, got["error"], headers["Cache-Control"]) == (status, code, "no-store")
    status, got, headers = call(app, lambda_context, None, method="GET", path="/")
    assert (status, got["error"], headers["Cache-Control"]) == (404, "NOT_FOUND", "no-store")


def test_a_base64_body_is_read_as_its_bytes_and_broken_base64_is_a_400(lambda_context):
    app, _ = make_app()
    assert call(app, lambda_context, b"\x00\xff\x10", base64_body=True)[:2] == (200, {"bytes": 3})
    event = rest_proxy_event("POST", "/things", body=b"x", headers={"Content-Type": "application/json"})
    event.update(body="not base64!", isBase64Encoded=True)
    result = app.resolve(event, lambda_context)
    assert (result["statusCode"], json.loads(result["body"])["error"]) == (400, "invalid_request")


def test_a_body_over_the_limit_is_a_413(lambda_context):
    status, body, _ = call(make_app()[0], lambda_context, b"x" * 17)
    assert (status, body) == (413, {"error": "payload_too_large", "message": "the request body exceeds 16 bytes"})


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_a_body_declared_as_anything_but_json_is_a_415_in_the_envelope(lambda_context, content_type):
    status, body, _ = call(make_app()[0], lambda_context, b"{}", headers={"content-type": content_type})
    assert (status, body["error"]) == (415, "unsupported_media_type")
    assert content_type in body["message"]


@pytest.mark.parametrize(("content_type", "json_like"), [
    (None, True), ("application/json", True), ("Application/JSON; charset=utf-8", True),
    ("application/vnd.api+json", True), ("text/json", False), ("multipart/form-data; boundary=x", False)])
def test_what_counts_as_json(content_type, json_like):
    assert is_json(content_type) is json_like


def test_error_response_builds_the_envelope_outside_a_resolver():
    response = error_response(503, "temporarily_unavailable", "try again", retry_after=5, reference="r-1")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
    assert json.loads(str(response.body)) == {"error": "temporarily_unavailable", "message": "try again",
                                              "reference": "r-1"}


def test_base64_bodies_of_the_fixture_are_really_base64():
    """Guards the helper above: rest_proxy_event encodes when asked (else the base64 test proves nothing)."""
    event = rest_proxy_event("POST", "/things", body=b"\x00\xff", base64_body=True)
    assert base64.b64decode(event["body"]) == b"\x00\xff"
