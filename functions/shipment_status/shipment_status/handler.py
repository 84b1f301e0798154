"""EventBridge (rule on detail-type ShipmentStatusChanged, `logistics` bus) -> Salesforce.

EventBridge invokes Lambda asynchronously with exactly one event per invocation, so `handler` applies a
list of one. A raised error makes Lambda retry the event (the function's EventInvokeConfig), then send it
to the dead-letter queue; what is ignored on purpose (an older status, a duplicate) is not an error.

`sqs_handler` is the buffered variant (the rule targets an SQS queue, Lambda reads batches of up to 10, or
more with a batching window): the same service applies the whole batch, so all its platform events go out
in one API call, and only the messages whose change failed are reported for redelivery.

A publish whose answer was lost (``unknown``) fails too: the retry publishes it again, so the page may get the
event twice, both copies with the same de-duplication key (Tracking_Number__c + Status_Time__c).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from salesforce_access import SalesforceError, get_access
from salesforce_access.observability import logger, metrics, tracer
from shipment_status.leases import DynamoDBLeases
from shipment_status.models import InvalidShipmentEvent, ShipmentStatusChange, dedup_key, parse_eventbridge_event
from shipment_status.salesforce import SalesforceShipments
from shipment_status.service import Outcome, Report, Result, ShipmentStatusService

AWS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 3})
LEASE_SAFETY_SECONDS = 2.0  # a lease outlives its invocation by this much, never less


class ShipmentUpdateFailed(RuntimeError):
    """Raised so that Lambda retries the event, then dead-letters it; the message names each shipment."""


@functools.cache
def _dynamodb() -> Any:
    return boto3.client("dynamodb", config=AWS_CONFIG)


def _table_name() -> str:
    name = os.environ.get("STATE_TABLE_NAME", "").strip()
    if not name:
        raise RuntimeError("environment variable STATE_TABLE_NAME is not set")
    return name


def build_service(context: Any) -> ShipmentStatusService:
    """The service for one invocation: Salesforce budget and lease duration follow the time left."""
    access = get_access().bind(context)
    remaining = context.get_remaining_time_in_millis() / 1000
    leases = DynamoDBLeases(_dynamodb(), _table_name(), owner=context.aws_request_id,
                            lease_seconds=remaining + LEASE_SAFETY_SECONDS,
                            wait_seconds=float(os.environ.get("SHIPMENT_LEASE_WAIT_SECONDS", "3")))
    return ShipmentStatusService(SalesforceShipments(access), leases)


def _record(report: Report) -> None:
    for result, count in report.counts().items():
        metrics.add_metric(name=f"ShipmentChanges{result.title()}", unit=MetricUnit.Count, value=count)
    for outcome in report.outcomes:
        if outcome.result is Result.UNKNOWN:
            logger.warning("publish outcome unknown; the retry publishes again, the page may receive it twice",
                           extra={**_log_fields(outcome), "dedup_key": dedup_key(outcome.change)})
            continue
        level = logger.warning if outcome.result in (Result.FAILED, Result.REJECTED, Result.BUSY) else logger.info
        level("shipment change " + outcome.result.value, extra=_log_fields(outcome))


@contextlib.contextmanager
def _logged_failure(changes: Sequence[ShipmentStatusChange]) -> Iterator[None]:
    """One error line when Salesforce fails the whole call, then the error goes on to Lambda (retry, DLQ).
    Only the error's type, code, status and path: never its headers or body."""
    try:
        yield
    except SalesforceError as exc:
        logger.error("Salesforce call failed; the invocation fails and is retried", extra={
            "error": type(exc).__name__, "error_code": exc.error_code, "status": exc.status, "method": exc.method,
            "path": exc.path, "attempts": exc.attempts, "tracking_numbers": [c.tracking_number for c in changes]})
        raise


def _log_fields(outcome: Outcome) -> dict[str, Any]:
    change = outcome.change
    return {"tracking_number": change.tracking_number, "status": change.status.value,
            "status_time": change.status_time.isoformat(), "result": outcome.result.value,
            "detail": outcome.detail, "event_uuid": outcome.event_uuid}


def _describe(exc: Exception) -> str:
    """Why a message could not be parsed; InvalidShipmentEvent and ValueError name the fields, never values."""
    if isinstance(exc, (InvalidShipmentEvent, ValueError, KeyError, TypeError)):
        return str(exc)
    return f"{type(exc).__name__}: the message body cannot be read"


def _summary(report: Report) -> dict[str, Any]:
    return {"results": report.counts(),
            "shipments": [{"tracking_number": o.change.tracking_number, "status": o.change.status.value,
                           "result": o.result.value, "detail": o.detail} for o in report.outcomes]}


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        change = parse_eventbridge_event(event)
    except InvalidShipmentEvent as exc:
        # Retries cannot fix it, but raising keeps it: after Lambda's retries it lands in the DLQ with this
        # message, where an operator sees which fields were wrong.
        metrics.add_metric(name="ShipmentEventsInvalid", unit=MetricUnit.Count, value=1)
        logger.error("invalid ShipmentStatusChanged event", extra={"problems": exc.problems})
        raise
    with _logged_failure([change]):
        report = build_service(context).apply([change])
    _record(report)
    failed = report.of(Result.FAILED, Result.BUSY, Result.REJECTED, Result.UNKNOWN)
    if failed:
        raise ShipmentUpdateFailed("; ".join(f"{o.change.tracking_number}: {o.result.value}: {o.detail}"
                                             for o in failed))
    return _summary(report)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def sqs_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Buffered variant: SQS records whose body is an EventBridge event; partial batch response.

    Invalid messages and permanently refused changes are reported as failures too, so the queue's redrive
    policy moves them to its DLQ instead of dropping them.
    """
    failures: list[str] = []
    changes: list[tuple[str, ShipmentStatusChange]] = []
    for record in event.get("Records", []):
        try:
            changes.append((record["messageId"], parse_eventbridge_event(json.loads(record["body"]))))
        except Exception as exc:  # whatever one body raises (RecursionError too) fails that message alone
            logger.error("invalid message in the shipment queue",
                         extra={"message_id": record.get("messageId"), "error": _describe(exc)})
            metrics.add_metric(name="ShipmentEventsInvalid", unit=MetricUnit.Count, value=1)
            failures.append(record.get("messageId", ""))
    if changes:
        with _logged_failure([change for _, change in changes]):
            report = build_service(context).apply([change for _, change in changes])
        _record(report)
        bad = {id(o.change) for o in report.of(Result.FAILED, Result.BUSY, Result.REJECTED, Result.UNKNOWN)}
        failures += [message_id for message_id, change in changes if id(change) in bad]
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
