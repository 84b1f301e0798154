"""API Gateway entry point: GET /products/{sku}/availability and POST /availability.

Thin: validate (Powertools resolver with pydantic), call the service, shape the reply. Every error is JSON
{"code", "message"}; a client's mistake is a 400 or 404, an ERP failure a 502, 503 or 504, never a stack
trace. The service (cache and circuit breaker) lives as long as the warm container.

No ``from __future__ import annotations`` here: the resolver reads the route signatures' real types.
"""

import json
from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from salesforce_access.observability import logger, metrics, tracer  # shared: redaction, no secret in botocore logs

from .breaker import CircuitBreaker
from .cache import StaleCache
from .config import ConfigurationError, Settings
from .deadline import Deadline
from .erp import ErpInventoryClient
from .errors import AvailabilityError
from .models import (
    MAX_QUANTITY,
    SKU_PATTERN,
    Availability,
    BatchAvailability,
    BatchRequest,
    WarehouseAvailability,
)
from .service import AvailabilityService, ItemAnswer, Outcome

SAFETY_MARGIN_SECONDS = 0.5  # kept from the Lambda timeout to answer, log and flush metrics


def parse_json(text: str) -> Any:
    """json.loads for the request body: JSON nested deeper than Python's recursion limit is bad JSON (a 400
    INVALID_JSON through the resolver's validation), not a RecursionError answered 500."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("JSON nested too deeply", text, 0) from None



app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json)

_service: AvailabilityService | None = None
_budget_seconds = 0.0


def get_service() -> AvailabilityService:
    """Built once per container: its cache and circuit breaker outlive single invocations."""
    global _service, _budget_seconds
    if _service is None:
        settings = Settings.from_env()
        _budget_seconds = settings.budget_seconds
        breaker = CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_reset_seconds,
                                 on_open=_circuit_opened)
        client = ErpInventoryClient(settings.erp_base_url, connect_timeout=settings.erp_connect_timeout_seconds,
                                    read_timeout=settings.erp_read_timeout_seconds,
                                    max_attempts=settings.erp_max_attempts,
                                    api_key=_api_key_reader(settings.erp_api_key_secret_arn))
        _service = AvailabilityService(client, StaleCache(settings.cache_ttl_seconds,
                                                          settings.stale_if_error_seconds), breaker)
    return _service


def reset() -> None:
    """Forget the service, as a cold start would (tests use it to change settings)."""
    global _service
    _service = None


def _api_key_reader(secret_arn: str) -> Callable[[bool], str | None]:
    if not secret_arn:
        return lambda refresh: None
    provider = None

    def read(refresh: bool) -> str:
        nonlocal provider
        if provider is None:  # boto3 only when a key is configured
            from aws_lambda_powertools.utilities.parameters import SecretsProvider
            from botocore.config import Config

            # botocore's defaults (60 s timeouts, several retries) would blow the latency budget on a cold start.
            provider = SecretsProvider(boto_config=Config(connect_timeout=1, read_timeout=2,
                                                          retries={"max_attempts": 2, "mode": "standard"}))
        value = provider.get(secret_arn, max_age=300, force_fetch=refresh)
        text = value.decode() if isinstance(value, bytes) else str(value)
        if text.lstrip().startswith("{"):
            text = json.loads(text).get("api_key", "")  # {"api_key": "..."} or the bare key
        return text

    return read


def _circuit_opened() -> None:
    logger.warning("ERP circuit opened: calls to the ERP are paused", extra={"erp_circuit": "open"})
    metrics.add_metric(name="ErpCircuitOpened", unit=MetricUnit.Count, value=1)


def _deadline() -> Deadline:
    """The configured budget, cut short if the Lambda invocation itself has less time left."""
    get_service()
    remaining = app.lambda_context.get_remaining_time_in_millis() / 1000.0 - SAFETY_MARGIN_SECONDS
    return Deadline(min(_budget_seconds, remaining))


# -- routes ------------------------------------------------------------------------------------------------------


@app.get("/products/<sku>/availability")
@tracer.capture_method
def get_availability(sku: Annotated[str, Path(pattern=SKU_PATTERN)],
                     quantity: Annotated[int, Query(ge=1, le=MAX_QUANTITY)] = 1) -> Response[Availability]:
    deadline = _deadline()
    answer, outcome = get_service().check_one(sku, quantity, deadline)
    _record(outcome, 1)
    return _ok(_availability(answer))


@app.post("/availability")
@tracer.capture_method
def post_availability(body: BatchRequest) -> Response[BatchAvailability]:
    deadline = _deadline()
    outcome = get_service().check([(item.sku, item.quantity) for item in body.items], deadline)
    _record(outcome, len(body.items))
    result = BatchAvailability(results=[_availability(a) for a in outcome.answers], not_found=outcome.not_found,
                               stale=outcome.stale)
    return _ok(result)


def _availability(answer: ItemAnswer) -> Availability:
    stock = answer.stock
    return Availability(
        sku=answer.sku, requested_quantity=answer.requested_quantity, available=answer.available,
        quantity_on_hand=stock.on_hand, quantity_available=stock.available,
        warehouses=[WarehouseAvailability(code=w.code, name=w.name, quantity_on_hand=w.on_hand,
                                          quantity_available=w.available) for w in stock.warehouses],
        as_of=stock.as_of, stale=answer.stale)


def _record(outcome: Outcome, items: int) -> None:
    metrics.add_metric(name="ItemsChecked", unit=MetricUnit.Count, value=items)
    metrics.add_metric(name="CacheHits", unit=MetricUnit.Count, value=outcome.cache_hits)
    if outcome.stale:
        metrics.add_metric(name="StaleAnswers", unit=MetricUnit.Count, value=1)
    logger.info("availability answered", extra={
        "items": items, "cache_hits": outcome.cache_hits, "erp_called": outcome.erp_called,
        "not_found": len(outcome.not_found), "stale": outcome.stale,
        "erp_failure": outcome.erp_failure.code if outcome.erp_failure else None})


# -- errors: always {"code", "message"} ---------------------------------------------------------------------------


def _ok(body: Availability | BatchAvailability) -> Response:
    return Response(status_code=200, content_type="application/json", body=body, headers={"Cache-Control": "no-store"})


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body),
                    headers={"Cache-Control": "no-store", **(headers or {})})


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"code": code, "message": message}, headers)


@app.exception_handler(RequestValidationError)
def bad_request(exc: RequestValidationError) -> Response:
    metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    field = loc[-1] if loc else ""
    where = ".".join(loc[1:]) or "body"
    if first.get("type") == "json_invalid":
        return error(400, "INVALID_JSON", "the request body is not valid JSON")
    if field == "sku":
        return error(400, "INVALID_SKU", f"{where}: a SKU is 1 to 64 letters, digits, '.', '_' or '-', "
                                         "starting with a letter or digit")
    if field == "quantity":
        return error(400, "INVALID_QUANTITY", f"{where}: quantity must be a whole number from 1 to {MAX_QUANTITY}")
    return error(400, "INVALID_REQUEST", f"{where}: {first.get('msg', 'invalid value')}")


@app.exception_handler(UnicodeDecodeError)
def undecodable_body(exc: UnicodeDecodeError) -> Response:
    """A base64 body (binary media types, local stacks) that is not UTF-8 fails in Powertools' decoded_body."""
    event = app.current_event
    if not (event.is_base64_encoded and event.body):
        return unexpected(exc)  # not the request body: our fault, not the client's
    metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
    return error(400, "INVALID_JSON", "the request body is not UTF-8 encoded JSON")


@app.exception_handler(AvailabilityError)
def availability_error(exc: AvailabilityError) -> Response:
    if exc.status < 500:
        metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
    else:
        logger.warning("ERP failure", extra={"code": exc.code, "status": exc.status})
        metrics.add_metric(name="ErpFailures", unit=MetricUnit.Count, value=1)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return error(exc.status, exc.code, exc.message, headers)


@app.exception_handler(ConfigurationError)
def configuration_error(exc: ConfigurationError) -> Response:
    logger.error("misconfigured", extra={"reason": str(exc)})
    metrics.add_metric(name="InternalErrors", unit=MetricUnit.Count, value=1)
    return error(500, "CONFIGURATION_ERROR", "the availability service is misconfigured; operators are alerted")


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response:
    logger.exception("unexpected error")
    metrics.add_metric(name="InternalErrors", unit=MetricUnit.Count, value=1)
    return error(500, "INTERNAL_ERROR", "an unexpected error occurred; it has been logged")


@app.not_found
def not_found(exc: Exception) -> Response:
    metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
    return error(404, "NOT_FOUND", "no such resource: see GET /products/{sku}/availability and POST /availability")


# -- Lambda entry point ------------------------------------------------------------------------------------------


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: Any) -> dict:
    return app.resolve(event, context)
