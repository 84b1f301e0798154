"""The publisher's orchestration: settings and clients, one service per invocation, what is logged and counted,
and what fails an invocation (EventBridge) or a message (the SQS-buffered variant).

EventBridge invokes Lambda asynchronously with exactly one event per invocation, so `apply_event` applies a
list of one. A raised error makes Lambda retry the event (the function's EventInvokeConfig), then send it to
the dead-letter queue; what is ignored on purpose (an older status, a duplicate) is not an error.

`ShipmentBatch` is the buffered variant (the rule targets an SQS queue, Lambda reads batches of up to 10, or
more with a batching window): the whole batch is applied in one service call, so all its platform events go
out in one API call, and BatchProcessor then reports only the messages whose change failed (invalid ones
too, so the queue's redrive policy moves them to its DLQ instead of dropping them).

A publish whose answer was lost (``unknown``) fails too: the retry publishes it again, so the page may get the
event twice, both copies with the same de-duplication key (Tracking_Number__c + Status_Time__c).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from pydantic import Field

from edge_kit.settings import EnvironmentSettings
from salesforce_access import SalesforceError, get_access
from salesforce_access.observability import logger, metrics
from shipment_status.leases import DynamoDBLeases
from shipment_status.models import InvalidShipmentEvent, ShipmentStatusChange, dedup_key, parse_eventbridge_event
from shipment_status.salesforce import SalesforceShipments
from shipment_status.service import Outcome, Report, Result, ShipmentStatusService

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

AWS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 3})
LEASE_SAFETY_SECONDS = 2.0  # a lease outlives its invocation by this much, never less
FAILED = (Result.FAILED, Result.BUSY, Result.REJECTED, Result.UNKNOWN)  # the outcomes that fail their delivery


class Settings(EnvironmentSettings):
    table_name: str = Field(min_length=1, validation_alias="STATE_TABLE_NAME")
    lease_wait_seconds: float = Field(3.0, ge=0, le=60, validation_alias="SHIPMENT_LEASE_WAIT_SECONDS")


class ShipmentUpdateFailed(RuntimeError):
    """Raised so that Lambda retries the event, then dead-letters it; the message names each shipment."""


@functools.cache
def dynamodb() -> DynamoDBClient:
    """Built on first use (not at import, so tests start moto first; they empty this cache when it restarts)."""
    return boto3.client("dynamodb", config=AWS_CONFIG)


def build_service(context: LambdaContext) -> ShipmentStatusService:
    """The service for one invocation: Salesforce budget and lease duration follow the time left. Settings are
    read per invocation (microseconds; a missing variable fails the invocation naming it)."""
    settings = Settings.from_environment()
    access = get_access().bind(context)
    remaining = context.get_remaining_time_in_millis() / 1000
    leases = DynamoDBLeases(dynamodb(), settings.table_name, owner=context.aws_request_id,
                            lease_seconds=remaining + LEASE_SAFETY_SECONDS, wait_seconds=settings.lease_wait_seconds)
    return ShipmentStatusService(SalesforceShipments(access), leases)


def apply_event(event: Any, context: LambdaContext) -> dict[str, Any]:
    """One EventBridge event: its summary, or an error for Lambda to retry (then the DLQ keeps it with the error)."""
    try:
        change = parse_eventbridge_event(event)
    except InvalidShipmentEvent as exc:
        # Retries cannot fix it, but raising keeps it: after Lambda's retries it lands in the DLQ with this
        # message, where an operator sees which fields were wrong.
        metrics.add_metric(name="ShipmentEventsInvalid", unit=MetricUnit.Count, value=1)
        logger.error("invalid ShipmentStatusChanged event", extra={"problems": exc.problems})
        raise
    report = _apply([change], context)
    failed = report.of(*FAILED)
    if failed:
        raise ShipmentUpdateFailed("; ".join(f"{o.change.tracking_number}: {o.result.value}: {o.detail}"
                                             for o in failed))
    return {"results": report.counts(),
            "shipments": [{"tracking_number": o.change.tracking_number, "status": o.change.status.value,
                           "result": o.result.value, "detail": o.detail} for o in report.outcomes]}


class ShipmentBatch:
    """A batch of SQS records whose bodies are EventBridge events, applied in one service call.

    Built before BatchProcessor runs because the service must see every change at once (three API calls per
    batch, the newest change per shipment); `settle` is then BatchProcessor's record handler. A message that
    cannot be read fails alone; a Salesforce failure of the whole call propagates and fails the whole batch.
    """

    def __init__(self, records: Iterable[SQSRecord], context: LambdaContext):
        self.failures: dict[str, str] = {}  # message id -> why it failed
        changes: list[tuple[str, ShipmentStatusChange]] = []
        for record in records:
            try:
                changes.append((record.message_id, parse_eventbridge_event(json.loads(record.body))))
            except Exception as exc:  # whatever one body raises (RecursionError too) fails that message alone
                logger.error("invalid message in the shipment queue",
                             extra={"message_id": record.message_id, "error": _describe(exc)})
                metrics.add_metric(name="ShipmentEventsInvalid", unit=MetricUnit.Count, value=1)
                self.failures[record.message_id] = _describe(exc)
        if changes:
            report = _apply([change for _, change in changes], context)
            bad = {id(o.change): f"{o.result.value}: {o.detail}" for o in report.of(*FAILED)}
            self.failures.update((message_id, bad[id(change)]) for message_id, change in changes if id(change) in bad)

    def settle(self, record: SQSRecord) -> None:
        """BatchProcessor's record handler: raising reports the message in batchItemFailures."""
        if record.message_id in self.failures:
            raise ShipmentUpdateFailed(self.failures[record.message_id])


def _apply(changes: Sequence[ShipmentStatusChange], context: LambdaContext) -> Report:
    with _logged_failure(changes):
        report = build_service(context).apply(changes)
    for result, count in report.counts().items():
        metrics.add_metric(name=f"ShipmentChanges{result.title()}", unit=MetricUnit.Count, value=count)
    for conflict in report.order_conflicts:  # the link is kept: someone must decide which order is right
        metrics.add_metric(name="ShipmentOrderConflicts", unit=MetricUnit.Count, value=1)
        logger.warning("order number conflicts with the shipment's order; the link is kept", extra={
            "tracking_number": conflict.tracking_number, "order_number": conflict.order_number,
            "linked_order_number": conflict.linked_order_number})
    for outcome in report.outcomes:
        if outcome.result is Result.UNKNOWN:
            logger.warning("publish outcome unknown; the retry publishes again, the page may receive it twice",
                           extra={**_log_fields(outcome), "dedup_key": dedup_key(outcome.change)})
            continue
        level = logger.warning if outcome.result in (Result.FAILED, Result.REJECTED, Result.BUSY) else logger.info
        level("shipment change " + outcome.result.value, extra=_log_fields(outcome))
    return report


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


def reset() -> None:
    """Forget the clients (tests and benchmarks call it when they restart moto)."""
    dynamodb.cache_clear()
