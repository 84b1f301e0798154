"""What POST /shipments/events does once the request is authenticated: validate, put on the bus, count.

Order of checks (the signature middleware does the first two): size (413), signature (401, before the body is
even parsed), JSON (415), validation (400 naming every invalid field), then the bus (202 with the event ids,
or 503 with Retry-After). Resending a request is always safe: the publisher ignores a status it already has.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from pydantic import ValidationError

from edge_kit.http_api import ApiError
from edge_kit.signatures import SignedRequests, SigningPolicy
from salesforce_access.observability import logger, metrics
from shipment_webhook.bus import BusUnavailable, LogisticsBus
from shipment_webhook.config import Settings
from shipment_webhook.models import field_errors, parse_body

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

AWS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 3})
RETRY_AFTER_SECONDS = 30
MAX_BODY_BYTES = 256 * 1024  # EventBridge's limit for one PutEvents request


@functools.cache
def settings() -> Settings:
    return Settings.from_environment()


@functools.cache
def events_client() -> EventBridgeClient:
    return boto3.client("events", config=AWS_CONFIG)


def reset() -> None:
    """Forget cached settings and clients (tests; never needed in Lambda)."""
    settings.cache_clear()
    events_client.cache_clear()


def signing_policy() -> SigningPolicy:
    config = settings()
    return SigningPolicy(config.signing_secret_arn, secret_max_age=config.secret_max_age, tolerance=config.tolerance,
                         max_body_bytes=MAX_BODY_BYTES, retry_after=RETRY_AFTER_SECONDS)


signed_requests = SignedRequests(signing_policy)  # tests move its `clock` to replay a request later


def accept_events(body: bytes) -> dict[str, Any]:
    """Validate every event, put them all on the bus; the 202 body (an ApiError says why not)."""
    try:
        events = parse_body(body)
    except ValidationError as exc:
        errors = field_errors(exc)
        raise ApiError(f"{len(errors)} invalid field(s); nothing was accepted", status=400, code="invalid_request",
                       fields=errors) from None
    try:
        ids = LogisticsBus(events_client(), settings().bus_name).put(events)
    except BusUnavailable as exc:
        metrics.add_metric(name="ShipmentWebhookBusFailures", unit=MetricUnit.Count, value=1)
        logger.warning("events not put on the bus", extra={"error": str(exc), "events": len(events)})
        raise ApiError(f"{exc}; send the request again (events already accepted are not applied twice)",
                       status=503, code="unavailable", retry_after=RETRY_AFTER_SECONDS) from None
    metrics.add_metric(name="ShipmentWebhookEvents", unit=MetricUnit.Count, value=len(ids))
    logger.info("shipment events accepted", extra={"events": len(ids),
                                                   "tracking_numbers": [e.tracking_number for e in events]})
    return {"accepted": len(ids), "event_ids": ids}


def count_error(exc: ApiError) -> None:
    if exc.status != 401:  # 401s are counted by the signature check (SignatureRejected)
        metrics.add_metric(name="ShipmentWebhookRejected" if exc.status < 500 else "ShipmentWebhookUnavailable",
                           unit=MetricUnit.Count, value=1)
