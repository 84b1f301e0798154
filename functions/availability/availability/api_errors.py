"""Every error of the availability API in the edge kit's envelope {"error", "message"}, with the API's own
upper-case codes: a client's mistake is a 400, 404 or 415, an ERP failure a 502, 503 or 504, never a trace.

The resolver's request validation (pydantic, from the route signatures) is translated here into the codes
the OpenAPI document lists (INVALID_SKU, INVALID_QUANTITY, INVALID_JSON, INVALID_REQUEST).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.metrics import MetricUnit

from edge_kit.http_api import ApiError, error_response, is_json, register_error_handlers
from salesforce_access.observability import logger, metrics

from .models import MAX_QUANTITY

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

NO_STORE = {"Cache-Control": "no-store"}  # stock changes: no cache between Salesforce and the ERP keeps an answer


def register(app: APIGatewayRestResolver) -> None:
    register_error_handlers(
        app, headers=NO_STORE, code=str.upper, on_error=_count,
        on_internal=lambda exc: metrics.add_metric(name="InternalErrors", unit=MetricUnit.Count, value=1),
        not_found_message="no such resource: see GET /products/{sku}/availability and POST /availability",
        internal_message="an unexpected error occurred; it has been logged")

    def bad_request(status: int, code: str, message: str) -> Response:
        metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
        return error_response(status, code, message, headers=NO_STORE)

    @app.exception_handler(RequestValidationError)
    def invalid(exc: RequestValidationError) -> Response:
        content_type = app.current_event.headers.get("content-type")
        if app.current_event.body and not is_json(content_type):  # Powertools parsed a form body: not ours
            return bad_request(415, "UNSUPPORTED_MEDIA_TYPE", "the request body must be application/json")
        first = exc.errors()[0]
        loc = [str(part) for part in first.get("loc", ())]
        field = loc[-1] if loc else ""
        where = ".".join(loc[1:]) or "body"
        if first.get("type") == "json_invalid":
            return bad_request(400, "INVALID_JSON", "the request body is not valid JSON")
        if field == "sku":
            return bad_request(400, "INVALID_SKU", f"{where}: a SKU is 1 to 64 letters, digits, '.', '_' or '-', "
                                                   "starting with a letter or digit")
        if field == "quantity":
            return bad_request(400, "INVALID_QUANTITY",
                               f"{where}: quantity must be a whole number from 1 to {MAX_QUANTITY}")
        return bad_request(400, "INVALID_REQUEST", f"{where}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(RequestUnsupportedContentType)
    def unsupported(exc: RequestUnsupportedContentType) -> Response:
        return bad_request(415, "UNSUPPORTED_MEDIA_TYPE", "the request body must be application/json")

    @app.exception_handler(UnicodeDecodeError)
    def undecodable(exc: UnicodeDecodeError) -> Response:
        """A base64 body (binary media types, local stacks) that is not UTF-8 fails in Powertools' decoded_body."""
        event = app.current_event
        if not (event.is_base64_encoded and event.body):  # not the request body: our fault, not the client's
            logger.exception("unexpected error")
            return error_response(500, "INTERNAL_ERROR", "an unexpected error occurred; it has been logged",
                                  headers=NO_STORE, reference=event.request_context.request_id or "")
        return bad_request(400, "INVALID_JSON", "the request body is not UTF-8 encoded JSON")


def _count(exc: ApiError) -> None:
    if exc.status < 500:
        metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
    else:
        logger.warning("ERP failure", extra={"code": exc.code, "status": exc.status})
        metrics.add_metric(name="ErpFailures", unit=MetricUnit.Count, value=1)
