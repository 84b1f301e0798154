"""API Gateway -> POST /orders (write now, answer with the Salesforce ids) and POST /orders/async (queue).

Every request is authenticated by its HMAC signature before its body is even parsed (401), then validated
(400 listing every invalid field). Every answer is JSON; nothing unexpected ever reaches the caller as a stack
trace (500 with a reference to the logs instead).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError as PydanticValidationError
from request_signatures import SignatureError, parse_keys, verify

from order_intake.config import Settings
from order_intake.container import catalog, ledger, settings, sqs
from order_intake.container import reset as reset  # tests and benchmarks call api.reset() / worker.reset()
from order_intake.errors import IntakeError, InvalidOrder, PayloadTooLarge, TemporarilyUnavailable
from order_intake.models import Order, OrderBatch, field_errors
from order_intake.salesforce import SalesforceOrders
from order_intake.service import OrderIntake
from salesforce_access import get_access
from salesforce_access.observability import logger, metrics, tracer

SQS_BATCH = 10
app = APIGatewayRestResolver()


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body), headers=headers)


# -- authentication ---------------------------------------------------------------------------------

def _raw_body(limit: int) -> bytes:
    event = app.current_event
    raw = event.body or ""
    try:
        body = base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode()
    except (binascii.Error, ValueError):
        raise InvalidOrder("the request body is not valid base64", fields=[]) from None
    if len(body) > limit:
        raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
    return body


def _signing_keys(config: Settings) -> list[str]:
    if not config.signing_secret_arn:
        raise RuntimeError("environment variable ORDER_SIGNING_SECRET_ARN is not set")
    try:
        value = parameters.get_secret(config.signing_secret_arn, max_age=config.signing_secret_max_age)
        return parse_keys(str(value))
    except (parameters.exceptions.GetParameterError, BotoCoreError, ClientError, ValueError) as exc:
        # the reason goes to the logs (it names no key material); the caller only learns to retry
        logger.error("signing secret unavailable", extra={"error": type(exc).__name__, "detail": str(exc)[:200]})
        raise TemporarilyUnavailable("request authentication is temporarily unavailable") from None


def authenticated_body() -> bytes:
    """The raw body, once its signature has been verified (SignatureError otherwise)."""
    config = settings()
    body = _raw_body(config.max_body_bytes)
    verify(app.current_event.headers or {}, body, _signing_keys(config), tolerance=config.signature_tolerance)
    return body


# -- routes -----------------------------------------------------------------------------------------

def _service(max_share: float) -> OrderIntake:
    config = settings()
    access = get_access().bind(app.lambda_context)
    catalog.ttl = config.product_cache_seconds
    return OrderIntake(
        ledger=ledger(),
        salesforce=SalesforceOrders(access, catalog),
        max_share=max_share, retry=config.retry,
        on_ledger_error=lambda op: metrics.add_metric(name=f"OrderLedger{op.title()}Errors", unit=MetricUnit.Count,
                                                      value=1),
    )


@app.post("/orders")
def post_order() -> Response:
    body = authenticated_body()
    try:
        order = Order.model_validate_json(body)
    except PydanticValidationError as exc:
        errors = field_errors(exc)
        raise InvalidOrder(f"the order has {len(errors)} invalid field(s)", fields=errors) from None
    logger.append_keys(order_number=order.order_number)
    outcome = _service(settings().sync_max_share).submit(order)
    metrics.add_metric(name=f"Orders{outcome.status.title()}", unit=MetricUnit.Count, value=1)
    logger.info("order processed", extra={"status": outcome.status})
    return _json(201 if outcome.status == "created" else 200, outcome.body())


@app.post("/orders/async")
def post_orders_async() -> Response:
    body = authenticated_body()
    try:
        batch = OrderBatch.model_validate_json(body)
    except PydanticValidationError as exc:
        errors = field_errors(exc)
        raise InvalidOrder(f"the batch has {len(errors)} invalid field(s); nothing was queued",
                           fields=errors) from None
    config = settings()
    if not config.queue_url:
        raise RuntimeError("environment variable ORDER_QUEUE_URL is not set")
    _enqueue(config.queue_url, batch.orders)
    metrics.add_metric(name="OrdersQueued", unit=MetricUnit.Count, value=len(batch.orders))
    logger.info("orders queued", extra={"orders": len(batch.orders)})
    return _json(202, {"status": "queued", "accepted": len(batch.orders),
                       "order_numbers": [order.order_number for order in batch.orders]})


def _enqueue(queue_url: str, orders: list[Order]) -> None:
    """Send every order as its own message; any left unsent makes the whole request retryable (503).

    Re-sending orders that did get queued is harmless: the worker skips a version already written.
    """
    for start in range(0, len(orders), SQS_BATCH):
        entries = [
            {"Id": str(i), "MessageBody": order.model_dump_json(),
             "MessageAttributes": {"order_number": {"DataType": "String", "StringValue": order.order_number}}}
            for i, order in enumerate(orders[start:start + SQS_BATCH])
        ]
        for _attempt in range(3):
            try:
                failed = sqs().send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
            except (BotoCoreError, ClientError) as exc:
                logger.warning("queueing orders failed", extra={"error": str(exc)[:200]})
                failed = entries
            if not failed:
                break
            ids = {item["Id"] for item in failed}
            entries = [entry for entry in entries if entry["Id"] in ids]
        else:
            raise TemporarilyUnavailable(f"{len(entries)} order(s) could not be queued; send the batch again "
                                         f"(orders already queued are not written twice)")


# -- errors -----------------------------------------------------------------------------------------

@app.exception_handler(SignatureError)
def unauthorized(exc: SignatureError) -> Response:
    metrics.add_metric(name="SignatureRejected", unit=MetricUnit.Count, value=1)
    logger.warning("request refused: bad signature", extra={"reason": str(exc)})
    return _json(401, {"error": "unauthorized", "message": str(exc)},
                 headers={"WWW-Authenticate": 'HMAC-SHA256 headers="X-Signature-Timestamp X-Signature"'})


@app.exception_handler(IntakeError)
def intake_error(exc: IntakeError) -> Response:
    metrics.add_metric(name="OrdersRejected" if exc.permanent else "OrdersDeferred", unit=MetricUnit.Count, value=1)
    logger.info("order not written", extra={"error": exc.code, "status": exc.status})
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return _json(exc.status, exc.body(), headers)


@app.exception_handler(Exception)
def internal_error(exc: Exception) -> Response:
    logger.exception("unexpected error")
    reference = getattr(app.lambda_context, "aws_request_id", "")
    return _json(500, {"error": "internal_error", "message": "internal error; sending the same order again is safe",
                       "reference": reference})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
