"""What POST /orders and POST /orders/async do once the request is authenticated (api.py routes to here).

POST /orders validates the order (400 listing every invalid field) and writes it now through OrderIntake;
POST /orders/async validates the whole batch before queueing any of it, one SQS message per order. The
signing policy and the error metrics live here too, so the handler module is only wiring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from edge_kit.http_api import ApiError
from edge_kit.settings import ConfigurationError
from edge_kit.signatures import SignedRequests, SigningPolicy
from edge_kit.sqs import send_batch, string_attributes
from order_intake.container import intake_service, settings, sqs
from order_intake.errors import IntakeError, InvalidOrder, TemporarilyUnavailable
from order_intake.models import Order, OrderBatch, field_errors
from order_intake.service import Outcome
from salesforce_access.observability import logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

Model = TypeVar("Model", bound=BaseModel)
SECRET_RETRY_AFTER = 5  # seconds: Secrets Manager outages are short, and the caller's retry is cheap


def signing_policy() -> SigningPolicy:
    config = settings()
    if not config.signing_secret_arn:
        raise ConfigurationError("invalid or missing environment variable(s): ORDER_SIGNING_SECRET_ARN")
    return SigningPolicy(config.signing_secret_arn, secret_max_age=config.signing_secret_max_age,
                         tolerance=config.signature_tolerance, max_body_bytes=config.max_body_bytes,
                         retry_after=SECRET_RETRY_AFTER)


signed_requests = SignedRequests(signing_policy)


def parse(model: type[Model], body: bytes, what: str, consequence: str = "") -> Model:
    try:
        return model.model_validate_json(body)
    except PydanticValidationError as exc:
        errors = field_errors(exc)
        raise InvalidOrder(f"{what} has {len(errors)} invalid field(s){consequence}", fields=errors) from None


def write_order(body: bytes, context: LambdaContext) -> Outcome:
    """Validate and write one order now; an IntakeError says why not."""
    order = parse(Order, body, "the order")
    logger.append_keys(order_number=order.order_number)
    service = intake_service(context, settings().sync_max_share)
    outcome = service.submit(order)
    metrics.add_metric(name=f"Orders{outcome.status.title()}", unit=MetricUnit.Count, value=1)
    logger.info("order processed", extra={"status": outcome.status})
    return outcome


def queue_orders(body: bytes) -> dict[str, Any]:
    """Validate the whole batch, then send every order as its own message; the 202 body.

    Any order left unsent makes the whole request retryable (503). Re-sending orders that did get queued is
    harmless: the worker skips a version already written.
    """
    batch = parse(OrderBatch, body, "the batch", "; nothing was queued")
    config = settings()
    if not config.queue_url:
        raise ConfigurationError("invalid or missing environment variable(s): ORDER_QUEUE_URL")
    entries: list[SendMessageBatchRequestEntryTypeDef] = [
        {"Id": "0", "MessageBody": order.model_dump_json(),
         "MessageAttributes": string_attributes({"order_number": order.order_number})}
        for order in batch.orders]
    unsent = send_batch(sqs(), config.queue_url, entries)
    if unsent:
        raise TemporarilyUnavailable(f"{len(unsent)} order(s) could not be queued; send the batch again "
                                     f"(orders already queued are not written twice)")
    metrics.add_metric(name="OrdersQueued", unit=MetricUnit.Count, value=len(batch.orders))
    logger.info("orders queued", extra={"orders": len(batch.orders)})
    return {"status": "queued", "accepted": len(batch.orders),
            "order_numbers": [order.order_number for order in batch.orders]}


def count_error(exc: ApiError) -> None:
    """Metrics and a log line for every refused or deferred request (401s are counted by the signature check)."""
    if exc.status == 401:
        return
    permanent = exc.permanent if isinstance(exc, IntakeError) else exc.status < 500
    metrics.add_metric(name="OrdersRejected" if permanent else "OrdersDeferred", unit=MetricUnit.Count, value=1)
    logger.info("order not written", extra={"error": exc.code, "status": exc.status})
