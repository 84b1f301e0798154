"""The endpoint's orchestration: the request body as bytes, settings, parse, accept, log and count.

The handler answers what this returns or raises (the Ack, or a SOAP fault); the rule itself is in service.py,
SOAP in soap.py, AWS in queueing.py.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from pydantic import Field

from edge_kit.http_api import ApiError, raw_body
from edge_kit.settings import ConfigurationError, EnvironmentSettings
from outbound_message.queueing import NotificationQueue
from outbound_message.service import Accepted, accept
from outbound_message.soap import SoapFault, parse_notifications
from salesforce_access.observability import logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

DEFAULT_DEDUP_TTL = 8 * 24 * 3600  # longer than Salesforce retries a message (24 h, up to 7 days)
MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's limit for a synchronous request; API Gateway's is 10 MB
AWS_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


class Settings(EnvironmentSettings):
    queue_url: str = Field(min_length=1, validation_alias="CONTRACTS_QUEUE_URL")
    table_name: str = Field(min_length=1, validation_alias="STATE_TABLE_NAME")
    org_id: str = Field(min_length=1, validation_alias="SALESFORCE_ORG_ID")
    dedup_ttl_seconds: int = Field(DEFAULT_DEDUP_TTL, gt=0, validation_alias="OUTBOUND_DEDUP_TTL_SECONDS")


@functools.cache
def queue(settings: Settings) -> NotificationQueue:
    """Built on first use (not at import, so tests start moto first; they empty this cache when it restarts)."""
    return NotificationQueue(boto3.client("sqs", config=AWS_CONFIG), boto3.client("dynamodb", config=AWS_CONFIG),
                             queue_url=settings.queue_url, table_name=settings.table_name,
                             ttl_seconds=settings.dedup_ttl_seconds)


def request_body(event: BaseProxyEvent) -> bytes:
    """The body as bytes for the XML parser, which reads the XML declaration's encoding (not Powertools'
    decoded_body: it decodes a base64 body, as binary media types and local stacks send, as UTF-8 only)."""
    try:
        return raw_body(event, limit=MAX_BODY_BYTES)
    except ApiError as exc:  # broken base64 (400), too large (413): the sender's, answered in SOAP
        raise SoapFault(exc.message, status=exc.status, client=True) from None


def receive(body: bytes) -> Accepted:
    """Queue the message's new notifications; returns once SQS holds every one (then the Ack is due).

    The body is parsed before the settings are read, so a sender's mistake is a client fault even on an endpoint
    deployed without its settings. Settings are read per request: microseconds, and no stale copy in tests.
    """
    message = parse_notifications(body)
    try:
        settings = Settings.from_environment()
    except ConfigurationError as exc:  # names the variables, never a value
        raise SoapFault(f"the endpoint is not configured ({exc})", status=500, client=False) from None
    result = accept(message, settings.org_id, queue(settings))
    logger.info("outbound message queued", extra={
        "organization_id": message.organization_id, "action_id": message.action_id,
        "notification_ids": [n.id for n in message.notifications], "queued": result.queued,
        "duplicates": result.duplicates})
    metrics.add_metric(name="OutboundNotificationsQueued", unit=MetricUnit.Count, value=result.queued)
    if result.duplicates:
        metrics.add_metric(name="OutboundNotificationsDuplicate", unit=MetricUnit.Count, value=result.duplicates)
    return result
