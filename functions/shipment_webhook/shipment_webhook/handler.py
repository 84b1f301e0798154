"""API Gateway -> POST /shipments/events -> PutEvents on the `logistics` bus.

The signature is verified by the edge kit's middleware before the body is even parsed (401); what the route
does is in application.py. Every answer is JSON in the edge kit's error envelope; nothing unexpected reaches
the caller as a stack trace (500 with a reference to the logs).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from edge_kit.http_api import json_only, json_response, register_error_handlers
from salesforce_access.observability import logger, metrics, tracer
from shipment_webhook.application import accept_events, count_error, signed_requests
from shipment_webhook.application import reset as reset  # tests and benchmarks forget settings and clients
from shipment_webhook.models import MAX_EVENTS

app = APIGatewayRestResolver()
register_error_handlers(app, not_found_message="only POST /shipments/events is served here",
                        internal_message="internal error; sending the same request again is safe",
                        on_error=count_error)


@app.post("/shipments/events", middlewares=[signed_requests, json_only])
def post_events() -> Response:
    return json_response(202, accept_events(app.context["raw_body"]))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


__all__ = ["MAX_EVENTS", "handler"]
