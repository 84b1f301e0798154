"""The ShipmentStatusChanged event (the `detail` a carrier or the webhook puts on the `logistics` bus) and
the Salesforce shapes it becomes."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DETAIL_TYPE = "ShipmentStatusChanged"
# A status time before this is a sender's bug, and near datetime's limits one cannot even be converted to UTC
# (0001-01-01T00:00:00+01:00 overflows). The webhook refuses the same; a time in the future is the service's
# rule (refused with a tolerance for clock skew).
EARLIEST_STATUS_TIME = datetime(2000, 1, 1, tzinfo=UTC)


class ShipmentStatus(StrEnum):
    """The values of the Shipment__c.Status__c picklist."""

    LABEL_CREATED = "Label Created"
    PICKED_UP = "Picked Up"
    IN_TRANSIT = "In Transit"
    OUT_FOR_DELIVERY = "Out for Delivery"
    DELIVERED = "Delivered"
    EXCEPTION = "Exception"
    RETURNED = "Returned"


def to_millis(value: datetime) -> datetime:
    """UTC, truncated to the millisecond: Salesforce keeps datetimes to the millisecond, so a change and the
    record it was written to compare equal."""
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def salesforce_datetime(value: datetime) -> str:
    """``2025-03-02T08:15:00.000Z``, the form Salesforce accepts and returns."""
    value = to_millis(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class ShipmentStatusChange(BaseModel):
    """One status change of one shipment, as the carrier reported it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    tracking_number: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")
    status: ShipmentStatus
    status_time: datetime = Field(description="When the carrier observed the status; must carry a time zone")
    carrier: str | None = Field(default=None, max_length=80)
    location: str | None = Field(default=None, max_length=255)
    order_number: str | None = Field(default=None, max_length=50)

    @field_validator("tracking_number")
    @classmethod
    def _upper(cls, value: str) -> str:
        # Salesforce matches external ids case-insensitively; one spelling keeps lookups and logs consistent.
        return value.upper()

    @field_validator("status_time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must include a time zone (e.g. 2025-03-02T08:15:00Z)")
        try:
            utc = to_millis(value)
        except OverflowError:  # not a ValueError: pydantic would let it escape the model
            utc = None
        if utc is None or utc < EARLIEST_STATUS_TIME:
            raise ValueError("must be a time from 2000-01-01T00:00:00Z on, convertible to UTC")
        return utc

    def shipment_fields(self, order_number: str | None = None) -> dict[str, Any]:
        """The Shipment__c record, keyed by Tracking_Number__c for an upsert; ``Order__r`` only when the service
        decided to link `order_number` (the record has no order yet), never to move a shipment between orders."""
        fields: dict[str, Any] = {
            "Name": self.tracking_number,
            "Tracking_Number__c": self.tracking_number,
            "Status__c": self.status.value,
            "Status_Updated_At__c": salesforce_datetime(self.status_time),
        }
        if self.carrier:
            fields["Carrier__c"] = self.carrier
        if order_number:
            fields.update(order_link_fields(self.tracking_number, order_number))
        return fields

    def event_fields(self, order_number: str | None = None) -> dict[str, Any]:
        """The Shipment_Status__e platform event a subscribed page receives; `order_number` is the shipment's
        order when the service knows it (the record's link, or one an earlier event carried), else the change's."""
        fields: dict[str, Any] = {
            "Tracking_Number__c": self.tracking_number,
            "Status__c": self.status.value,
            "Status_Time__c": salesforce_datetime(self.status_time),
        }
        for name, value in (("Carrier__c", self.carrier), ("Location__c", self.location),
                            ("Order_Number__c", order_number or self.order_number)):
            if value:
                fields[name] = value
        return fields


def order_link_fields(tracking_number: str, order_number: str) -> dict[str, Any]:
    """Only the link: what an older change still contributes to a record it may not move back."""
    return {"Tracking_Number__c": tracking_number, "Order__r": {"Ecommerce_Order_Number__c": order_number}}


def same_order_number(first: str, second: str) -> bool:
    """External ids match case-insensitively in Salesforce (Ecommerce_Order_Number__c is not case-sensitive)."""
    return first.casefold() == second.casefold()


def dedup_key(change: ShipmentStatusChange) -> str:
    """``<Tracking_Number__c>|<Status_Time__c>`` as the event carries them: the same in every copy of one change
    (a publish whose answer was lost is published again), so a subscriber drops the copies by it."""
    fields = change.event_fields()
    return f"{fields['Tracking_Number__c']}|{fields['Status_Time__c']}"


class ShipmentStatusEvent(EventBridgeModel):
    """The EventBridge envelope as the rule delivers it to Lambda (Powertools' model, detail typed).

    Only ``detail-type`` and ``detail`` are required: the metadata is logged, never needed, and copies of
    events (an SQS buffer, a replay from the DLQ, moto's envelope) do not always carry all of it.
    """

    version: str = "0"
    id: str = ""
    source: str = ""
    account: str = ""
    time: datetime | None = None  # type: ignore[assignment]
    region: str = ""
    resources: list[str] = Field(default_factory=list)
    detail_type: Literal["ShipmentStatusChanged"] = Field(alias="detail-type")
    detail: ShipmentStatusChange


class LinkedOrder(BaseModel):
    """``Order__r`` as a SOQL row nests it: the linked Order's e-commerce number (None if it has none)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    order_number: str | None = Field(default=None, alias="Ecommerce_Order_Number__c")


class ShipmentRecord(BaseModel):
    """What Salesforce holds for a shipment now (the fields the ordering rule and the order link read)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(alias="Id")
    tracking_number: str = Field(alias="Tracking_Number__c")
    status: str | None = Field(default=None, alias="Status__c")
    status_updated_at: datetime | None = Field(default=None, alias="Status_Updated_At__c")
    order_id: str | None = Field(default=None, alias="Order__c")
    order: LinkedOrder | None = Field(default=None, alias="Order__r")

    @property
    def linked(self) -> bool:
        return self.order_id is not None

    @property
    def order_number(self) -> str | None:
        """The linked Order's e-commerce number; None when unlinked or the Order has no number."""
        return self.order.order_number if self.order else None


class InvalidShipmentEvent(ValueError):
    """The event cannot become a shipment update, whatever the retries: names every invalid field."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid ShipmentStatusChanged event: " + "; ".join(problems))
        self.problems = problems


def describe_errors(exc: ValidationError, prefix: str = "") -> list[str]:
    """Every field error as ``field: message``, never echoing the input values."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "event"
        problems.append(f"{prefix}{where}: {error['msg']}")
    return problems


def parse_eventbridge_event(event: Any) -> ShipmentStatusChange:
    """The change carried by one EventBridge event; InvalidShipmentEvent if it is not one."""
    try:
        return ShipmentStatusEvent.model_validate(event).detail
    except ValidationError as exc:
        raise InvalidShipmentEvent(describe_errors(exc)) from None
