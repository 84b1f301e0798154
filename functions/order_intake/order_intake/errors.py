"""What can go wrong with an order, as exceptions that know their HTTP answer.

`permanent` errors will fail again whatever happens (the order or the org must change first): the API answers
4xx and the worker sends the message to the dead-letter queue at once. The others are worth retrying later:
the API answers 503/409 with Retry-After and the worker lets SQS deliver the message again.

They are the edge kit's ``ApiError``s, so the API answers them in the one error envelope; their extra keys
(``fields``, ``products``, ``salesforce_errors``, ``order_number``) are documented in docs/api/orders-openapi.yaml.
"""

from __future__ import annotations

from typing import Any

from edge_kit.http_api import ApiError


class IntakeError(ApiError):
    status = 500
    code = "internal_error"
    permanent = True


class InvalidOrder(IntakeError):
    """400: the body is not a valid order; `fields` lists every problem."""

    status = 400
    code = "invalid_order"


class UnknownProducts(IntakeError):
    """422: product codes without an active entry in the standard price book."""

    status = 422
    code = "unknown_products"

    def __init__(self, products: list[str]):
        super().__init__(f"{len(products)} product(s) have no active standard price book entry: "
                         f"{', '.join(products)}", products=products)
        self.products = products


class SalesforceRejected(IntakeError):
    """422: Salesforce refused the write (validation rule, required field, bad reference...); nothing was kept."""

    status = 422
    code = "salesforce_rejected"

    def __init__(self, message: str, errors: list[dict[str, Any]]):
        super().__init__(message, salesforce_errors=errors)
        self.errors = errors


class StaleOrder(IntakeError):
    """409: a newer version of this order (by updated_at) has already been written."""

    status = 409
    code = "stale_order"


class Busy(IntakeError):
    """409: another request is changing the same order right now."""

    status = 409
    code = "order_busy"
    permanent = False
    retry_after = 2


class SalesforceUnavailable(IntakeError):
    """503: Salesforce is down, in maintenance, out of API allocation, or the outcome is unknown."""

    status = 503
    code = "salesforce_unavailable"
    permanent = False

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class TemporarilyUnavailable(IntakeError):
    """503: a dependency other than Salesforce (the queue) cannot be reached."""

    status = 503
    code = "temporarily_unavailable"
    permanent = False

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after
