"""ShipmentStatusChanged -> Shipment__c upsert (newest status wins) and a Shipment_Status__e platform event.

`handler`: the EventBridge rule's target, one event per invocation; an error makes Lambda retry it, then
dead-letter it. `sqs_handler`: the buffered variant (rule -> SQS queue -> Lambda), a partial batch response.
What each does is in application.py; the ordering rule in service.py.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from salesforce_access.observability import logger, metrics, tracer
from shipment_status.application import ShipmentBatch, apply_event
from shipment_status.application import reset as reset  # tests and benchmarks call it when they restart moto

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return apply_event(event, context)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def sqs_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS records whose body is an EventBridge event: applied together, then only the failed ones reported."""
    batch = ShipmentBatch([SQSRecord(record) for record in event.get("Records", [])], context)
    return dict(process_partial_response(event=event, record_handler=batch.settle, processor=processor,
                                         context=context))
