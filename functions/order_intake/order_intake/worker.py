"""SQS -> the order worker: drains POST /orders/async in batches, a few Salesforce calls per batch.

The whole batch is validated, checked against the ledger and written first (`OrderIntake.submit_many`: one
price book query when the cache is cold, one query for existing lines, one all-or-none Composite per group
of orders). Powertools' BatchProcessor then reports each message's outcome as a partial batch response:

- written, unchanged, superseded or stale: deleted from the queue;
- refused for good (invalid, unknown products, refused by Salesforce): sent to the dead-letter queue at once
  with the reason in its message attributes, and deleted (retrying could never succeed, and would spend API
  calls each time);
- Salesforce unavailable or out of allocation: left on the queue, hidden for Retry-After * 2^(receives-1)
  seconds, and dead-lettered by the redrive policy after maxReceiveCount receives.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError as PydanticValidationError

from order_intake.container import catalog, ledger, settings, sqs
from order_intake.container import reset as reset  # tests and benchmarks call api.reset() / worker.reset()
from order_intake.errors import IntakeError, InvalidOrder
from order_intake.models import Order, field_errors
from order_intake.salesforce import SalesforceOrders
from order_intake.service import OrderIntake, Outcome
from salesforce_access import get_access
from salesforce_access.observability import logger, metrics, tracer

MAX_VISIBILITY = 12 * 3600  # SQS's maximum visibility timeout
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def parse(body: str) -> Order:
    try:
        return Order.model_validate_json(body)
    except PydanticValidationError as exc:
        errors = field_errors(exc)
        raise InvalidOrder(f"the order has {len(errors)} invalid field(s)", fields=errors) from None


def _dead_letter(queue_url: str, records: list[dict[str, Any]], errors: dict[str, IntakeError]) -> set[str]:
    """Send refused messages to the DLQ with their reason; the message ids that made it."""
    sent: set[str] = set()
    items = [r for r in records if r["messageId"] in errors]
    for start in range(0, len(items), 10):
        entries = []
        for index, record in enumerate(items[start:start + 10]):
            error = errors[record["messageId"]]
            entries.append({
                "Id": str(index), "MessageBody": record["body"],
                "MessageAttributes": {
                    "error_code": {"DataType": "String", "StringValue": error.code},
                    "error_message": {"DataType": "String", "StringValue": error.message[:1000]},
                    "error_details": {"DataType": "String", "StringValue": json.dumps(error.details)[:200_000]},
                    "source_message_id": {"DataType": "String", "StringValue": record["messageId"]},
                },
            })
        try:
            response = sqs().send_message_batch(QueueUrl=queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("dead-lettering failed: the messages stay on the queue", extra={"error": str(exc)[:200]})
            continue
        ok = {item["Id"] for item in response.get("Successful", [])}
        sent |= {items[start + int(i)]["messageId"] for i in ok}
    return sent


def _postpone(queue_url: str, records: list[dict[str, Any]], errors: dict[str, IntakeError]) -> None:
    """Hide messages that failed for a transient reason for Retry-After * 2^(receives-1) seconds."""
    entries = []
    for record in records:
        error = errors.get(record["messageId"])
        if error is None or not error.retry_after:
            continue
        receives = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
        timeout = min(error.retry_after * 2 ** max(receives - 1, 0), MAX_VISIBILITY)
        entries.append({"Id": str(len(entries)), "ReceiptHandle": record["receiptHandle"],
                        "VisibilityTimeout": timeout})
    for start in range(0, len(entries), 10):
        try:
            sqs().change_message_visibility_batch(QueueUrl=queue_url, Entries=entries[start:start + 10])
        except (BotoCoreError, ClientError) as exc:  # the queue's own visibility timeout applies instead
            logger.warning("could not postpone messages", extra={"error": str(exc)[:200]})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = settings()
    records: list[dict[str, Any]] = event.get("Records", [])
    outcomes: dict[str, Outcome | IntakeError] = {}
    orders: list[tuple[str, Order]] = []
    for record in records:
        try:
            orders.append((record["messageId"], parse(record["body"])))
        except InvalidOrder as exc:
            outcomes[record["messageId"]] = exc
    if orders:
        catalog.ttl = config.product_cache_seconds
        service = OrderIntake(
            ledger=ledger(),
            salesforce=SalesforceOrders(get_access().bind(context), catalog),
            max_share=config.async_max_share, retry=config.retry,
            on_ledger_error=lambda op: metrics.add_metric(name=f"OrderLedger{op.title()}Errors",
                                                          unit=MetricUnit.Count, value=1),
        )
        outcomes.update(service.submit_many(orders))

    refused = {k: v for k, v in outcomes.items() if isinstance(v, IntakeError) and v.permanent}
    deferred = {k: v for k, v in outcomes.items() if isinstance(v, IntakeError) and not v.permanent}
    dead_lettered = _dead_letter(config.dead_letter_queue_url, records, refused) \
        if refused and config.dead_letter_queue_url else set()
    if deferred and config.queue_url:
        _postpone(config.queue_url, records, deferred)
    for status in ("created", "updated", "unchanged", "superseded", "stale"):
        count = sum(1 for v in outcomes.values() if isinstance(v, Outcome) and v.status == status)
        if count:
            metrics.add_metric(name=f"Orders{status.title()}", unit=MetricUnit.Count, value=count)
    if refused:
        metrics.add_metric(name="OrdersRejected", unit=MetricUnit.Count, value=len(refused))
        logger.warning("orders refused", extra={"orders": {k: v.code for k, v in refused.items()}})
    if deferred:
        metrics.add_metric(name="OrdersDeferred", unit=MetricUnit.Count, value=len(deferred))

    def record_handler(record: SQSRecord) -> str:
        outcome = outcomes.get(record.message_id)
        if isinstance(outcome, IntakeError):
            if record.message_id in dead_lettered:
                return outcome.code
            raise outcome
        if outcome is None:  # cannot happen: every record has an outcome; retry rather than lose it
            raise RuntimeError(f"no outcome for message {record.message_id}")
        return outcome.status

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

