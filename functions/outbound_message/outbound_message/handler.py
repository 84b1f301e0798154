"""POST /outbound/contracts: Salesforce Outbound Messages about signed contracts, acknowledged only after
every notification is durably in the contracts queue. Any failure answers a SOAP fault, so Salesforce
keeps the message and retries it."""

from __future__ import annotations

import base64
import binascii
import functools
import os
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from outbound_message.queueing import NotificationQueue, QueueingFailed
from outbound_message.service import accept
from outbound_message.soap import ACK, CONTENT_TYPE, SoapFault, parse_notifications
from salesforce_access.observability import logger, metrics, tracer

DEFAULT_DEDUP_TTL = 8 * 24 * 3600  # longer than Salesforce retries a message (24 h, up to 7 days)
AWS_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})

app = APIGatewayRestResolver()


@functools.cache
def queue() -> NotificationQueue:
    """Built on first use (not at import, so tests start moto first)."""
    return NotificationQueue(
        boto3.client("sqs", config=AWS_CONFIG), boto3.client("dynamodb", config=AWS_CONFIG),
        queue_url=os.environ["CONTRACTS_QUEUE_URL"], table_name=os.environ["STATE_TABLE_NAME"],
        ttl_seconds=int(os.environ.get("OUTBOUND_DEDUP_TTL_SECONDS", DEFAULT_DEDUP_TTL)),
    )


def xml(status: int, body: str) -> Response:
    return Response(status_code=status, content_type=CONTENT_TYPE, body=body)


def _body_bytes() -> bytes:
    """The body as bytes for expat, which reads the XML declaration's encoding. Not Powertools' decoded_body: it
    decodes a base64 body (binary media types, local stacks) as UTF-8 and raises on anything else."""
    event = app.current_event
    if event.is_base64_encoded and event.body:
        try:
            return base64.b64decode(event.body, validate=True)
        except (binascii.Error, ValueError):
            raise SoapFault("the request body is not valid base64", status=400, client=True) from None
    return (event.body or "").encode("utf-8")


@app.post("/outbound/contracts")
def notifications() -> Response:
    message = parse_notifications(_body_bytes())
    expected = os.environ.get("SALESFORCE_ORG_ID", "")
    if not expected:
        raise SoapFault("the endpoint is not configured (SALESFORCE_ORG_ID)", status=500, client=False)
    result = accept(message, expected, queue())
    logger.info("outbound message queued", extra={
        "organization_id": message.organization_id, "action_id": message.action_id,
        "notification_ids": [n.id for n in message.notifications], "queued": result.queued,
        "duplicates": result.duplicates})
    metrics.add_metric(name="OutboundNotificationsQueued", unit=MetricUnit.Count, value=result.queued)
    if result.duplicates:
        metrics.add_metric(name="OutboundNotificationsDuplicate", unit=MetricUnit.Count, value=result.duplicates)
    return xml(200, ACK)


@app.exception_handler(SoapFault)
def soap_fault(exc: SoapFault) -> Response:
    logger.warning("outbound message refused", extra={"status": exc.status, "error": str(exc)})
    metrics.add_metric(name="OutboundMessagesRefused", unit=MetricUnit.Count, value=1)
    return xml(exc.status, exc.xml())


@app.not_found
def not_found(exc: Exception) -> Response:
    return xml(404, SoapFault("no such endpoint: Outbound Messages go to POST /outbound/contracts", status=404,
                              client=True).xml())


@app.exception_handler(QueueingFailed)
def not_queued(exc: QueueingFailed) -> Response:
    logger.error("outbound message not queued: no Ack, Salesforce will retry", extra={"error": str(exc)})
    metrics.add_metric(name="OutboundMessagesNotQueued", unit=MetricUnit.Count, value=1)
    return xml(500, SoapFault("the notifications could not be queued; retry later", status=500, client=False).xml())


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response:
    # AWS errors (throttling, the queue or table unavailable) and bugs: no Ack, no stack trace to the caller.
    logger.exception("outbound message failed: no Ack, Salesforce will retry")
    metrics.add_metric(name="OutboundMessagesNotQueued", unit=MetricUnit.Count, value=1)
    return xml(500, SoapFault("internal error; retry later", status=500, client=False).xml())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
