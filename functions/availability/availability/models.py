"""The API's request and response bodies (pydantic). docs/api/availability-openapi.yaml describes the same
shapes for Salesforce External Services; tests/functions/availability/test_openapi.py keeps them equal."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_QUANTITY = 1_000_000
MAX_ITEMS = 50  # one callout answers a whole opportunity; Salesforce allows 100 callouts per transaction


def _json_number(value: Any) -> Any:
    """pydantic's lax mode reads "5" and true as 5 and 1; a JSON body's quantity is a number (5 and 5.0 alike,
    as JSON Schema's integer), so strings and booleans are refused (strict=True would refuse 5.0 as well)."""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number, not a string or a boolean")
    return value


BodyQuantity = Annotated[int, BeforeValidator(_json_number)]


class ItemRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(pattern=SKU_PATTERN, description="The product's SKU (Product2.ProductCode).")
    quantity: BodyQuantity = Field(1, ge=1, le=MAX_QUANTITY, description=(
        'Units wanted, as a JSON number (5 or 5.0); a string ("5") or a boolean is refused with INVALID_QUANTITY.'))


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemRequest] = Field(min_length=1, max_length=MAX_ITEMS)


class WarehouseAvailability(BaseModel):
    code: str
    name: str
    quantity_on_hand: int
    quantity_available: int = Field(description="On hand minus reserved.")


class Availability(BaseModel):
    sku: str
    requested_quantity: int
    available: bool = Field(description="True if quantity_available covers requested_quantity.")
    quantity_on_hand: int
    quantity_available: int
    warehouses: list[WarehouseAvailability]
    as_of: datetime = Field(description="When the ERP read these figures (UTC).")
    stale: bool = Field(description="True if the ERP failed and this is an older cached answer (see as_of).")


class BatchAvailability(BaseModel):
    results: list[Availability] = Field(description="One per known SKU, in the order asked.")
    not_found: list[str] = Field(description="SKUs the ERP does not know.")
    stale: bool = Field(description="True if any result is stale.")


class ErrorBody(BaseModel):
    """The edge kit's error envelope (every HTTP API of the project answers errors in it)."""

    error: str
    message: str
    reference: str | None = None  # 500s: the request id, to find the log line
