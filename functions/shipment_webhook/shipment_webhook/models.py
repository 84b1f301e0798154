"""The webhook's request body: one ShipmentStatusChanged event, or ``{"events": [...]}`` with several.

The fields are the `detail` the publisher (functions/shipment_status) reads; the webhook validates them
first so a caller learns about every mistake at once (400), instead of the event failing later in the DLQ.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_EVENTS = 50
# A carrier's status time outside this window is a sender's bug. Refused here (400) rather than accepted and
# left to fail in the publisher: near datetime's limits it cannot even be converted to UTC
# (0001-01-01T00:00:00+01:00). The publisher (functions/shipment_status) refuses a time before 2000 too, and
# one in the future.
EARLIEST_STATUS_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_STATUS_TIME = datetime(2100, 1, 1, tzinfo=UTC)


class ShipmentStatus(StrEnum):
    LABEL_CREATED = "Label Created"
    PICKED_UP = "Picked Up"
    IN_TRANSIT = "In Transit"
    OUT_FOR_DELIVERY = "Out for Delivery"
    DELIVERED = "Delivered"
    EXCEPTION = "Exception"
    RETURNED = "Returned"


class ShipmentStatusChanged(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    tracking_number: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")
    status: ShipmentStatus
    status_time: datetime
    carrier: str | None = Field(default=None, max_length=80)
    location: str | None = Field(default=None, max_length=255)
    order_number: str | None = Field(default=None, max_length=50)

    @field_validator("status_time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must include a time zone (e.g. 2025-03-02T08:15:00Z)")
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            utc = None
        if utc is None or not EARLIEST_STATUS_TIME <= utc < LATEST_STATUS_TIME:
            raise ValueError("must be a time from 2000-01-01T00:00:00Z up to (not including) 2100-01-01T00:00:00Z")
        return value

    def detail(self) -> str:
        """The EventBridge `detail` (JSON text), times in ISO 8601 as sent, unset fields left out."""
        return self.model_dump_json(exclude_none=True)


class ShipmentEventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[ShipmentStatusChanged] = Field(min_length=1, max_length=MAX_EVENTS)


def parse_body(body: bytes) -> list[ShipmentStatusChanged]:
    """The events of a request body (one object, or {"events": [...]}); ValidationError lists every problem."""
    import json

    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's limit
        data = None  # pydantic's parser below names the JSON error (its nesting limit is an error, not a crash)
    if isinstance(data, dict) and "events" in data:
        return ShipmentEventBatch.model_validate(data).events
    if isinstance(data, dict):
        return [ShipmentStatusChanged.model_validate(data)]
    return ShipmentEventBatch.model_validate_json(body or b"null").events  # raises a JSON / type error


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Every problem as {"field", "message"}; never echoes the values sent."""
    errors = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ""
        for part in error["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        errors.append({"field": where or "body", "message": error["msg"]})
    return errors
