"""SQS -> the order worker: drains POST /orders/async in batches, a few Salesforce calls per batch.

The batch is written as a whole first (order_intake.batch_intake: refusals dead-lettered with their reason,
outages postponed with backoff); Powertools' BatchProcessor then reports each message's outcome as a
partial batch response, so only the messages left for a retry come back.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from order_intake.batch_intake import take_batch
from order_intake.container import reset as reset  # tests and benchmarks call api.reset() / worker.reset()
from order_intake.container import settings as settings  # benchmarks clear its cache
from salesforce_access.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context(clear_state=True)  # keys of a previous invocation never carry over
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    batch = take_batch(list(SQSEvent(event).records), context)
    return process_partial_response(event=event, record_handler=batch.settle, processor=processor, context=context)
