"""API Gateway -> POST /shipments/events -> PutEvents on the `logistics` bus.

Order of checks: size (413), signature (401, before the body is even parsed), validation (400 naming every
invalid field), then the bus (202 with the event ids, or 503 with Retry-After). Every answer is JSON; nothing
unexpected reaches the caller as a stack trace (500 with a reference to the logs). Resending a request is
always safe: the publisher ignores a status it already has.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from request_signatures import DEFAULT_TOLERANCE_SECONDS, SignatureError, parse_keys, verify

from salesforce_access.observability import logger, metrics, tracer
from shipment_webhook.bus import BusUnavailable, LogisticsBus
from shipment_webhook.models import MAX_EVENTS, field_errors, parse_body

AWS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 3})
RETRY_AFTER_SECONDS = 30
MAX_BODY_BYTES = 256 * 1024  # EventBridge's limit for one PutEvents request

app = APIGatewayRestResolver()


class WebhookError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra


@dataclass(frozen=True)
class Settings:
    bus_name: str
    signing_secret_arn: str
    secret_max_age: int
    tolerance: int

    @classmethod
    def from_environment(cls) -> Settings:
        missing = [name for name in ("LOGISTICS_BUS_NAME", "LOGISTICS_SIGNING_SECRET_ARN") if not os.environ.get(name)]
        if missing:
            raise RuntimeError(f"environment variable(s) not set: {', '.join(missing)}")
        return cls(bus_name=os.environ["LOGISTICS_BUS_NAME"],
                   signing_secret_arn=os.environ["LOGISTICS_SIGNING_SECRET_ARN"],
                   secret_max_age=int(os.environ.get("SIGNING_SECRET_MAX_AGE", "300")),
                   tolerance=int(os.environ.get("SIGNATURE_TOLERANCE_SECONDS", DEFAULT_TOLERANCE_SECONDS)))


@functools.cache
def settings() -> Settings:
    return Settings.from_environment()


@functools.cache
def _events_client() -> Any:
    return boto3.client("events", config=AWS_CONFIG)


def reset() -> None:
    """Forget cached settings and clients (tests; never needed in Lambda)."""
    settings.cache_clear()
    _events_client.cache_clear()


def clock() -> float:
    """The receiver's clock for the replay window (a function, so tests can move time)."""
    return time.time()


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body), headers=headers)


def _raw_body() -> bytes:
    event = app.current_event
    raw = event.body or ""
    try:
        body = base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode()
    except (binascii.Error, ValueError):
        raise WebhookError(400, "invalid_request", "the request body is not valid base64") from None
    if len(body) > MAX_BODY_BYTES:
        raise WebhookError(413, "payload_too_large", f"the request body exceeds {MAX_BODY_BYTES} bytes")
    return body


def _signing_keys(config: Settings) -> list[str]:
    try:
        return parse_keys(str(parameters.get_secret(config.signing_secret_arn, max_age=config.secret_max_age)))
    except (parameters.exceptions.GetParameterError, BotoCoreError, ClientError, ValueError) as exc:
        logger.error("signing secret unavailable", extra={"error": type(exc).__name__})
        raise WebhookError(503, "unavailable", "request authentication is temporarily unavailable",
                           retry_after=RETRY_AFTER_SECONDS) from None


@app.post("/shipments/events")
def post_events() -> Response:
    config = settings()
    body = _raw_body()
    verify(app.current_event.headers or {}, body, _signing_keys(config), tolerance=config.tolerance, now=clock)
    try:
        events = parse_body(body)
    except ValidationError as exc:
        errors = field_errors(exc)
        raise WebhookError(400, "invalid_request", f"{len(errors)} invalid field(s); nothing was accepted",
                           fields=errors) from None
    try:
        ids = LogisticsBus(_events_client(), config.bus_name).put(events)
    except BusUnavailable as exc:
        metrics.add_metric(name="ShipmentWebhookBusFailures", unit=MetricUnit.Count, value=1)
        logger.warning("events not put on the bus", extra={"error": str(exc), "events": len(events)})
        raise WebhookError(503, "unavailable", f"{exc}; send the request again (events already accepted are "
                           "not applied twice)", retry_after=RETRY_AFTER_SECONDS) from None
    metrics.add_metric(name="ShipmentWebhookEvents", unit=MetricUnit.Count, value=len(ids))
    logger.info("shipment events accepted", extra={"events": len(ids),
                                                   "tracking_numbers": [e.tracking_number for e in events]})
    return _json(202, {"accepted": len(ids), "event_ids": ids})


@app.exception_handler(SignatureError)
def unauthorized(exc: SignatureError) -> Response:
    metrics.add_metric(name="SignatureRejected", unit=MetricUnit.Count, value=1)
    logger.warning("request refused: bad signature", extra={"reason": str(exc)})
    return _json(401, {"error": "unauthorized", "message": str(exc)},
                 headers={"WWW-Authenticate": 'HMAC-SHA256 headers="X-Signature-Timestamp X-Signature"'})


@app.exception_handler(WebhookError)
def webhook_error(exc: WebhookError) -> Response:
    body: dict[str, Any] = {"error": exc.code, "message": str(exc)}
    if "fields" in exc.extra:
        body["fields"] = exc.extra["fields"]
    metrics.add_metric(name="ShipmentWebhookRejected" if exc.status < 500 else "ShipmentWebhookUnavailable",
                       unit=MetricUnit.Count, value=1)
    retry_after = exc.extra.get("retry_after")
    return _json(exc.status, body, {"Retry-After": str(retry_after)} if retry_after else None)


@app.exception_handler(Exception)
def internal_error(exc: Exception) -> Response:
    logger.exception("unexpected error")
    reference = getattr(app.lambda_context, "aws_request_id", "")
    return _json(500, {"error": "internal_error", "message": "internal error; sending the same request again is safe",
                       "reference": reference})


@app.not_found
def not_found(exc: Exception) -> Response:
    return _json(404, {"error": "not_found", "message": "only POST /shipments/events is served here"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)


__all__ = ["MAX_EVENTS", "handler"]
