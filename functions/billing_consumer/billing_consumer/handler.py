"""SQS -> billing consumer: partial batch responses, idempotent per contract, DLQ without retries for
permanent failures, backoff for transient ones (each record's fate: billing_consumer.consumer)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_consumer.consumer import ContractConsumer, dependencies
from salesforce_access.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    deps = dependencies()
    deps.idempotency.register_lambda_context(context)
    # A processor per invocation (it holds the batch's results); an all-failed batch is reported like any
    # other partial failure instead of raising, and shows up in the TransientFailures metric.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=ContractConsumer(deps, context), processor=processor,
                                    context=context)
