"""The order contract of POST /orders (docs/api/orders-openapi.yaml) as pydantic models, and its fingerprint.

Validation happens at the edge, before anything is written or queued, and reports every invalid field at
once. Lengths follow the Salesforce fields the values land in, so Salesforce never truncates or refuses a
value the API accepted. Unknown properties are refused rather than ignored: a misspelt field would
otherwise be dropped silently. Numbers are JSON numbers or plain decimal strings (never true, "1e2" or " 5 "),
and text holds no control characters: a NUL or an escape code would reach Salesforce records, reports and the
XML of Outbound Messages (XML 1.0 cannot carry them); only multi-line fields keep tabs and line breaks.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError

MAX_LINES = 200  # one sObject Collections request per order; Salesforce's cap per request
MAX_BATCH_ORDERS = 500  # per POST /orders/async: validated and queued within API Gateway's 29 s
# A platform's change time outside this window is a sender's bug; near datetime's limits it cannot even be
# converted to UTC (0001-01-01T00:00:00+01:00), and before year 1000 its text would not sort in the ledger.
EARLIEST_UPDATE = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_UPDATE = datetime(2100, 1, 1, tzinfo=UTC)


# The string form docs/api/orders-openapi.yaml documents; more decimals pass here only as trailing zeros ("19.900"):
# decimal_places=2 refuses the rest.
DECIMAL_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
CONTROL_CHARACTERS_BUT_LINE_BREAKS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, LF, CR allowed


def _json_decimal(value: Any) -> Any:
    """pydantic's lax Decimal also reads " 5 ", "1e2", "+5", "5_0" and other digits than 0-9: not the contract.
    (Strict mode is no answer: the string form is documented, and queued orders carry it.)"""
    if isinstance(value, bool) or (isinstance(value, str) and not DECIMAL_TEXT.fullmatch(value)):
        raise ValueError('must be a JSON number or a decimal string such as "19.90"')
    return value


def _single_line(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters (U+0000 to U+001F, U+007F), tabs and line breaks "
                         "included")
    return value


def _multi_line(value: str) -> str:
    if CONTROL_CHARACTERS_BUT_LINE_BREAKS.search(value):
        raise ValueError("must not contain control characters other than tab, line feed and carriage return")
    return value


def _cents(value: Decimal) -> Decimal:
    """Two decimal places, so 19.9 and 19.90 are the same order (and the same fingerprint)."""
    return value.quantize(Decimal("0.01"))


# Business keys end up in URLs (upsert by external id) and SOQL: a conservative alphabet keeps both safe
# and matches what e-commerce platforms and ERPs issue.
BusinessKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50,
                                               pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
# Only looked up (quoted in SOQL), never written: any text, an unknown one is a 422 naming it.
ProductCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Quantity = Annotated[Decimal, Field(gt=0, le=1_000_000, decimal_places=2), BeforeValidator(_json_decimal),
                     AfterValidator(_cents)]
Money = Annotated[Decimal, Field(ge=0, lt=Decimal("1e16"), decimal_places=2), BeforeValidator(_json_decimal),
                  AfterValidator(_cents)]


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


# Free text, trimmed, as long as the Salesforce field it lands in (named aliases: type checkers need them);
# one line unless the field is a text area (street, the order's description).
Text20 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20), AfterValidator(_single_line)]
Text40 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=40), AfterValidator(_single_line)]
Text80 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=80), AfterValidator(_single_line)]
Text255 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255), AfterValidator(_single_line)]
Name255 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
                    AfterValidator(_single_line)]
Street255 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255), AfterValidator(_multi_line)]
Text4000 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000), AfterValidator(_multi_line)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_Strict):
    street: Street255 | None = None
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
