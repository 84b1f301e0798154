"""What the two availability routes do: one service per warm container, a deadline per request, the answer
shaped as the API's models, and the metrics and log line of every answer (handler.py routes to here).

The service's cache and circuit breaker outlive single invocations; ``reset()`` forgets them, as a cold
start would (tests use it to change settings).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit

from edge_kit.outside_http import ApiKeyReader, Budget, invocation_deadline
from salesforce_access.observability import logger, metrics

from .breaker import CircuitBreaker
from .cache import StaleCache
from .config import Settings
from .erp import ErpInventoryClient
from .models import Availability, BatchAvailability, BatchRequest, WarehouseAvailability
from .service import AvailabilityService, ItemAnswer, Outcome

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

SAFETY_MARGIN_SECONDS = 0.5  # kept from the Lambda timeout to answer, log and flush metrics

_service: AvailabilityService | None = None
_budget_seconds = 0.0


def get_service() -> AvailabilityService:
    """Built once per container: its cache and circuit breaker outlive single invocations."""
    global _service, _budget_seconds
    if _service is None:
        settings = Settings.from_environment()
        _budget_seconds = settings.budget_seconds
        breaker = CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_reset_seconds,
                                 on_open=_circuit_opened)
        client = ErpInventoryClient(settings.erp_base_url, connect_timeout=settings.erp_connect_timeout_seconds,
                                    read_timeout=settings.erp_read_timeout_seconds,
                                    max_attempts=settings.erp_max_attempts,
                                    api_key=ApiKeyReader(settings.erp_api_key_secret_arn))
        _service = AvailabilityService(client, StaleCache(settings.cache_ttl_seconds,
                                                          settings.stale_if_error_seconds), breaker)
    return _service


def reset() -> None:
    """Forget the service, as a cold start would."""
    global _service
    _service = None


def _circuit_opened() -> None:
    logger.warning("ERP circuit opened: calls to the ERP are paused", extra={"erp_circuit": "open"})
    metrics.add_metric(name="ErpCircuitOpened", unit=MetricUnit.Count, value=1)


def _deadline(context: LambdaContext) -> Budget:
    """The configured budget, cut short if the Lambda invocation itself has less time left."""
    get_service()
    return invocation_deadline(context, budget_seconds=_budget_seconds, margin_seconds=SAFETY_MARGIN_SECONDS)


def check_one(sku: str, quantity: int, context: LambdaContext) -> Availability:
    deadline = _deadline(context)
    answer, outcome = get_service().check_one(sku, quantity, deadline)
    _record(outcome, 1)
    return _availability(answer)


def check_many(request: BatchRequest, context: LambdaContext) -> BatchAvailability:
    deadline = _deadline(context)
    outcome = get_service().check([(item.sku, item.quantity) for item in request.items], deadline)
    _record(outcome, len(request.items))
    return BatchAvailability(results=[_availability(a) for a in outcome.answers], not_found=outcome.not_found,
                             stale=outcome.stale)


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
