"""API Gateway entry point: GET /products/{sku}/availability and POST /availability.

Thin: validate (Powertools resolver with pydantic), call the application, shape the reply. Errors are the
edge kit's envelope {"error", "message"} (api_errors.py); the service lives as long as the warm container.

No ``from __future__ import annotations`` here: the resolver reads the route signatures' real types.
"""

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from salesforce_access.observability import logger, metrics, tracer  # shared: redaction, no secret in botocore logs

from . import api_errors
from .application import check_many, check_one
from .application import get_service as get_service  # tests and benchmarks reach the service
from .application import reset as reset
from .models import MAX_QUANTITY, SKU_PATTERN, Availability, BatchAvailability, BatchRequest


def parse_json(text: str) -> Any:
    """json.loads for the request body: JSON nested deeper than Python's recursion limit is bad JSON (a 400
    INVALID_JSON through the resolver's validation), not a RecursionError answered 500."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("JSON nested too deeply", text, 0) from None


app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json)
api_errors.register(app)


@app.get("/products/<sku>/availability")
@tracer.capture_method
def get_availability(sku: Annotated[str, Path(pattern=SKU_PATTERN)],
                     quantity: Annotated[int, Query(ge=1, le=MAX_QUANTITY)] = 1) -> Response[Availability]:
    return _ok(check_one(sku, quantity, app.lambda_context))


@app.post("/availability")
@tracer.capture_method
def post_availability(body: BatchRequest) -> Response[BatchAvailability]:
    return _ok(check_many(body, app.lambda_context))


def _ok(body: Availability | BatchAvailability) -> Response:
    return Response(status_code=200, content_type="application/json", body=body, headers=dict(api_errors.NO_STORE))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
