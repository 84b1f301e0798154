"""POST /outbound/contracts: Outbound Messages, acked once every notification is queued, else a SOAP fault."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from outbound_message.application import queue as queue  # re-exported: tests empty its cache when moto restarts
from outbound_message.application import receive, request_body
from outbound_message.queueing import QueueingFailed
from outbound_message.soap import ACK, CONTENT_TYPE, SoapFault
from salesforce_access.observability import logger, metrics, tracer

app = APIGatewayRestResolver()


def xml(status: int, body: str) -> Response:
    return Response(status_code=status, content_type=CONTENT_TYPE, body=body)


@app.post("/outbound/contracts")
def notifications() -> Response:
    receive(request_body(app.current_event))
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


@app.exception_handler(Exception)
def not_queued(exc: Exception) -> Response:
    # SQS refused notifications, AWS failed (throttling, the table unavailable), a bug: no Ack, no stack trace.
    if isinstance(exc, QueueingFailed):
        logger.error("outbound message not queued: no Ack, Salesforce will retry", extra={"error": str(exc)})
    else:
        logger.exception("outbound message failed: no Ack, Salesforce will retry")
    metrics.add_metric(name="OutboundMessagesNotQueued", unit=MetricUnit.Count, value=1)
    text = "the notifications could not be queued" if isinstance(exc, QueueingFailed) else "internal error"
    return xml(500, SoapFault(f"{text}; retry later", status=500, client=False).xml())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
