"""The order contract of POST /orders (docs/api/orders-openapi.yaml) as pydantic models, and its fingerprint.

Validation happens at the edge, before anything is written or queued, and reports every invalid field at
once. Lengths follow the Salesforce fields the values land in, so Salesforce never truncates or refuses a
value the API accepted. Unknown properties are refused rather than ignored: a misspelt field would
otherwise be dropped silently.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError

MAX_LINES = 200  # one sObject Collections request per order; Salesforce's cap per request
MAX_BATCH_ORDERS = 500  # per POST /orders/async: validated and queued within API Gateway's 29 s
# A platform's change time outside this window is a sender's bug; near datetime's limits it cannot even be
# converted to UTC (0001-01-01T00:00:00+01:00), and before year 1000 its text would not sort in the ledger.
EARLIEST_UPDATE = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_UPDATE = datetime(2100, 1, 1, tzinfo=UTC)


def _cents(value: Decimal) -> Decimal:
    """Two decimal places, so 19.9 and 19.90 are the same order (and the same fingerprint)."""
    return value.quantize(Decimal("0.01"))


# Business keys end up in URLs (upsert by external id) and SOQL: a conservative alphabet keeps both safe
# and matches what e-commerce platforms and ERPs issue.
BusinessKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50,
                                               pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
ProductCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Quantity = Annotated[Decimal, Field(gt=0, le=1_000_000, decimal_places=2), AfterValidator(_cents)]
Money = Annotated[Decimal, Field(ge=0, lt=Decimal("1e16"), decimal_places=2), AfterValidator(_cents)]


def _plausible_time(value: datetime) -> datetime:
    """Refused here, so the API answers 400 and the worker dead-letters only that order."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST_UPDATE <= utc < LATEST_UPDATE:
        raise ValueError("must be a time from 2000-01-01T00:00:00Z up to (not including) 2100-01-01T00:00:00Z")
    return value


UpdateTime = Annotated[AwareDatetime, AfterValidator(_plausible_time)]


# Free text, trimmed, as long as the Salesforce field it lands in (named aliases: type checkers need them).
Text20 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)]
Text40 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)]
Text80 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=80)]
Text255 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
Name255 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Text4000 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_Strict):
    street: Text255 | None = None
    city: Text40 | None = None
    postal_code: Text20 | None = None
    country: Text80 | None = None


class Customer(_Strict):
    erp_customer_id: BusinessKey = Field(description="The customer's id in the ERP: Account.ERP_Customer_Id__c")
    name: Name255
    phone: Text40 | None = None


class OrderLine(_Strict):
    product_code: ProductCode = Field(description="Product2.ProductCode of an active standard price book entry")
    quantity: Quantity
    unit_price: Money
    description: Text255 | None = None


class Order(_Strict):
    order_number: BusinessKey = Field(description="The platform's order number: Order.Ecommerce_Order_Number__c")
    order_date: date
    customer: Customer
    billing_address: Address | None = None
    shipping_address: Address | None = None
    lines: list[OrderLine] = Field(min_length=1, max_length=MAX_LINES)
    description: Text4000 | None = None
    updated_at: UpdateTime | None = Field(
        default=None, description="When the platform last changed the order; an older version never overwrites "
                                  "a newer one")

    def fingerprint(self) -> str:
        """SHA-256 of the normalised order: equal for the same order however it was formatted."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def product_codes(self) -> list[str]:
        return list(dict.fromkeys(line.product_code for line in self.lines))

    @property
    def version(self) -> datetime | None:
        return self.updated_at


class OrderBatch(_Strict):
    """POST /orders/async: a bulk import or a peak-day burst, validated as a whole before anything is queued."""

    orders: list[Order] = Field(min_length=1, max_length=MAX_BATCH_ORDERS)


def field_errors(exc: PydanticValidationError) -> list[dict[str, str]]:
    """Every invalid field as {field, message, type}; the offending values are never echoed (personal data)."""
    errors = []
    for error in exc.errors(include_input=False, include_url=False):
        path = ""
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        errors.append({"field": path or "body", "message": error["msg"], "type": error["type"]})
    return errors
