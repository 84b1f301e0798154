"""Application: one SQS batch of queued orders, written together, and each message's fate.

The whole batch is validated, checked against the ledger and written first (`OrderIntake.submit_many`: one
price book query when the cache is cold, one query for existing lines, one all-or-none Composite per group
of orders). Then each message's outcome:

- written, unchanged, superseded or stale: deleted from the queue;
- refused for good (invalid, unknown products, refused by Salesforce): sent to the dead-letter queue at once
  with the reason in its message attributes (edge_kit.sqs), and deleted (retrying could never succeed, and
  would spend API calls each time); one the DLQ did not take is left on the queue instead;
- Salesforce unavailable or out of allocation: left on the queue, hidden for about Retry-After * 2^(receives-1)
  seconds (jittered, at most 12 h), and dead-lettered by the redrive policy after maxReceiveCount receives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError as PydanticValidationError

from edge_kit.sqs import MAX_VISIBILITY_SECONDS, DeadLetterReason, dead_letter, postpone, redelivery_delay
from order_intake.container import intake_service, settings, sqs
from order_intake.errors import IntakeError, InvalidOrder
from order_intake.models import Order, field_errors
from order_intake.service import Outcome
from salesforce_access.observability import logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

STATUSES = ("created", "updated", "unchanged", "superseded", "stale")


def parse(body: str) -> Order:
    try:
        return Order.model_validate_json(body)
    except PydanticValidationError as exc:
        errors = field_errors(exc)
        raise InvalidOrder(f"the order has {len(errors)} invalid field(s)", fields=errors) from None


@dataclass(frozen=True)
class BatchOutcome:
    """Every message's outcome, and which refused ones the dead-letter queue took."""

    outcomes: dict[str, Outcome | IntakeError]
    dead_lettered: set[str]

    def settle(self, record: SQSRecord) -> str:
        """BatchProcessor's record handler: raising leaves the message on the queue (a partial batch failure)."""
        outcome = self.outcomes.get(record.message_id)
        if isinstance(outcome, IntakeError):
            if record.message_id in self.dead_lettered:
                return outcome.code
            raise outcome
        if outcome is None:  # cannot happen: every record has an outcome; retry rather than lose it
            raise RuntimeError(f"no outcome for message {record.message_id}")
        return outcome.status


def take_batch(records: Sequence[SQSRecord], context: LambdaContext) -> BatchOutcome:
    """Write the batch's orders, dead-letter what can never be written, postpone what may be written later."""
    config = settings()
    outcomes: dict[str, Outcome | IntakeError] = {}
    orders: list[tuple[str, Order]] = []
    for record in records:
        try:
            orders.append((record.message_id, parse(record.body)))
        except InvalidOrder as exc:
            outcomes[record.message_id] = exc
    if orders:
        service = intake_service(context, config.async_max_share)
        outcomes.update(service.submit_many(orders))

    refused = {k: v for k, v in outcomes.items() if isinstance(v, IntakeError) and v.permanent}
    deferred = {k: v for k, v in outcomes.items() if isinstance(v, IntakeError) and not v.permanent}
    dead_lettered: set[str] = set()
    if refused and config.dead_letter_queue_url:
        reasons = {k: DeadLetterReason(v.code, v.message, v.details or None) for k, v in refused.items()}
        dead_lettered = dead_letter(sqs(), config.dead_letter_queue_url, records, reasons)
    if deferred:
        postpone(sqs(), [(record, redelivery_delay(int(record.attributes.approximate_receive_count or 1),
                                                   base_seconds=error.retry_after,
                                                   max_seconds=MAX_VISIBILITY_SECONDS))
                         for record in records
                         if (error := deferred.get(record.message_id)) is not None and error.retry_after])
    _report(outcomes, refused, deferred)
    return BatchOutcome(outcomes, dead_lettered)


def _report(outcomes: dict[str, Outcome | IntakeError], refused: dict[str, IntakeError],
            deferred: dict[str, IntakeError]) -> None:
    for status in STATUSES:
        count = sum(1 for v in outcomes.values() if isinstance(v, Outcome) and v.status == status)
        if count:
            metrics.add_metric(name=f"Orders{status.title()}", unit=MetricUnit.Count, value=count)
    if refused:
        metrics.add_metric(name="OrdersRejected", unit=MetricUnit.Count, value=len(refused))
        logger.warning("orders refused", extra={"orders": {k: v.code for k, v in refused.items()}})
    if deferred:
        metrics.add_metric(name="OrdersDeferred", unit=MetricUnit.Count, value=len(deferred))
