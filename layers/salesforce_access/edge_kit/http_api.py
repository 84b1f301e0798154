"""One error envelope and the request-body rules of every HTTP API (order intake, shipment webhook, availability).

Every error answer is JSON ``{"error": "<code>", "message": "<text>"}``, plus ``"fields": [...]`` when a
request is invalid (each item names a field) and ``"reference": "<request id>"`` on a 500, so a caller can quote
it and an operator finds the log line. A 503 (or any error that knows when to come back) carries Retry-After.
API Gateway's own answers (throttling, missing auth) use the same envelope: template.yaml's GatewayResponses.

``register_error_handlers(app)`` wires the envelope into a Powertools resolver: ``ApiError`` (and subclasses,
raised from routes or middlewares) with its status, the resolver's not-found as a JSON 404, a settings problem
and anything unexpected as a 500 with a reference, never a stack trace. ``raw_body`` reads the body exactly as
sent (base64 or not, with a size limit: 413) for signature checks; ``json_only`` is the middleware that answers
415 to a body declared as anything but JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
    from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

__all__ = ["ApiError", "error_response", "is_json", "json_only", "json_response", "raw_body",
           "register_error_handlers", "request_reference"]


class ApiError(Exception):
    """An answer that is not a success: status, code, message, and extra envelope keys (``fields``, ...).

    Subclasses set ``status`` and ``code`` as class attributes; ``retry_after`` (seconds) becomes Retry-After.
    The message is shown to the caller: it says what is wrong, never a secret or a stack trace.
    """

    status = 500
    code = "internal_error"
    retry_after: int | None = None
    headers: Mapping[str, str] = {}

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: int | None = None, headers: Mapping[str, str] | None = None, **details: Any):
        super().__init__(message)
        self.message = message
        self.details = details
        if headers is not None:
            self.headers = headers
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if retry_after is not None:
            self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


def json_response(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    from aws_lambda_powertools.event_handler import Response

    return Response(status_code=status, content_type="application/json", body=json.dumps(body),
                    headers=dict(headers) if headers else None)


def error_response(status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None,
                   retry_after: int | None = None, **details: Any) -> Response:
    """The envelope as a Response (``details``: ``fields``, ``reference`` or an API's own documented keys)."""
    extra = {"Retry-After": str(retry_after)} if retry_after else {}
    return json_response(status, {"error": code, "message": message, **details}, {**(headers or {}), **extra})


def request_reference(app: ApiGatewayResolver) -> str:
    """The id a caller quotes for a 500: the Lambda request id (every log line carries it), else API Gateway's."""
    reference = getattr(getattr(app, "lambda_context", None), "aws_request_id", "") or ""
    if not reference:
        try:
            reference = getattr(getattr(app.current_event, "request_context", None), "request_id", "") or ""
        except (AttributeError, KeyError, TypeError):  # an event without a requestContext
            reference = ""
    return str(reference)


def register_error_handlers(app: ApiGatewayResolver, *, not_found_message: str,
                            internal_message: str = "internal error; it has been logged",
                            headers: Mapping[str, str] | None = None, code: Callable[[str], str] = str,
                            on_error: Callable[[ApiError], None] | None = None,
                            on_internal: Callable[[Exception], None] | None = None) -> None:
    """Answer every error of `app` in the envelope.

    ``headers`` go on every error answer (availability: Cache-Control); ``code`` styles the kit's own codes
    (availability's are upper case); ``on_error`` sees every ApiError first (metrics, a log line), and
    ``on_internal`` every 500 of the service's own making (bad settings, a bug).
    """
    from aws_lambda_powertools.event_handler.exceptions import NotFoundError

    from edge_kit.settings import ConfigurationError
    from salesforce_access.observability import logger

    def api_error(exc: ApiError) -> Response:
        if on_error is not None:
            on_error(exc)
        body = {**exc.body(), "error": code(exc.code)}
        extra = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        return json_response(exc.status, body, {**(headers or {}), **exc.headers, **extra})

    def not_found(exc: NotFoundError) -> Response:
        return error_response(404, code("not_found"), not_found_message, headers=headers)

    def misconfigured(exc: ConfigurationError) -> Response:
        logger.error("misconfigured", extra={"reason": str(exc)})  # names variables, never their values
        if on_internal is not None:
            on_internal(exc)
        return error_response(500, code("configuration_error"), "the service is misconfigured; operators are "
                              "alerted", headers=headers, reference=request_reference(app))

    def unexpected(exc: Exception) -> Response:
        logger.exception("unexpected error")
        if on_internal is not None:
            on_internal(exc)
        return error_response(500, code("internal_error"), internal_message, headers=headers,
                              reference=request_reference(app))

    app.exception_handler(ApiError)(api_error)
    app.not_found(not_found)
    app.exception_handler(ConfigurationError)(misconfigured)
    app.exception_handler(Exception)(unexpected)


# -- the request body ---------------------------------------------------------------------------------------------

def raw_body(event: BaseProxyEvent, limit: int) -> bytes:
    """The body's bytes exactly as the caller sent them (what a signature covers); 400 for broken base64, 413."""
    raw = event.body or ""
    try:
        body = base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode()
    except (binascii.Error, ValueError):
        raise ApiError("the request body is not valid base64", status=400, code="invalid_request") from None
    if len(body) > limit:
        raise ApiError(f"the request body exceeds {limit} bytes", status=413, code="payload_too_large")
    return body


def is_json(content_type: str | None) -> bool:
    """application/json or any ``+json`` type; no Content-Type at all counts as JSON (many webhook senders)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in ("", "application/json") or (media.startswith("application/") and media.endswith("+json"))


def json_only(app: ApiGatewayResolver, next_middleware: NextMiddleware) -> Response:
    """Resolver middleware: 415 for a request whose Content-Type is not JSON (the OpenAPI documents promise JSON)."""
    content_type = app.current_event.headers.get("content-type") if app.current_event.headers else None
    if not is_json(content_type):
        raise ApiError(f"the request body must be application/json, not {content_type!s:.100}", status=415,
                       code="unsupported_media_type")
    return next_middleware(app)
