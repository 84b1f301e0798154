"""API Gateway -> POST /orders (write now, answer with the Salesforce ids) and POST /orders/async (queue).

Every request is authenticated by its HMAC signature before its body is even parsed (401), must be JSON (415),
then is validated (400 listing every invalid field). Every answer is JSON in the edge kit's error envelope;
nothing unexpected ever reaches the caller as a stack trace (500 with a reference to the logs instead).
Each invocation starts with a clean log context (clear_state): one request's order_number never labels the next.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from edge_kit.http_api import json_only, json_response, register_error_handlers
from order_intake.api_application import count_error, queue_orders, signed_requests, write_order
from order_intake.container import reset as reset  # tests and benchmarks call api.reset() / worker.reset()
from order_intake.container import settings as settings  # benchmarks clear its cache
from salesforce_access.observability import logger, metrics, tracer

app = APIGatewayRestResolver()
register_error_handlers(app, not_found_message="only POST /orders and POST /orders/async are served here",
                        internal_message="internal error; sending the same order again is safe", on_error=count_error)


@app.post("/orders", middlewares=[signed_requests, json_only])
def post_order() -> Response:
    outcome = write_order(app.context["raw_body"], app.lambda_context)
    return json_response(201 if outcome.status == "created" else 200, outcome.body())


@app.post("/orders/async", middlewares=[signed_requests, json_only])
def post_orders_async() -> Response:
    return json_response(202, queue_orders(app.context["raw_body"]))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
