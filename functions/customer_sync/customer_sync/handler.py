"""Lambda entry points: ``start`` (EventBridge Scheduler or on demand) and ``work`` (the step queue's worker).

Each parses its event at the edge (customer_sync.events) and hands it to the run lifecycle
(customer_sync.runs). A bad start event is answered ``{"status": "rejected", "errors": [...]}`` before
anything is locked, queued or asked of Salesforce; an unusable step message is dropped with a log line,
since no retry could make it usable.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from salesforce_access.observability import logger, metrics, tracer

from . import container
from .events import StartRequest, StepMessage, problems

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def start(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Start (or resume) a sync run; refuses while another run holds the lock."""
    try:
        request = StartRequest.model_validate(event or {})
    except ValidationError as exc:
        logger.error("start event rejected", extra={"errors": problems(exc)})
        return {"status": "rejected", "errors": problems(exc)}
    return container.runs().start(request, context)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def work(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One message (BatchSize 1) is one step of a run."""
    runs = container.runs()

    def step(record: SQSRecord) -> None:
        try:
            message = StepMessage.model_validate_json(record.body)
        except ValidationError as exc:
            logger.error("unusable sync message dropped", extra={"message_id": record.message_id,
                                                                 "errors": problems(exc)})
            return
        runs.work(message, context)

    return dict(process_partial_response(event=event, record_handler=step, processor=processor, context=context))
