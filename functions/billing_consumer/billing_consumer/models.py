"""The three shapes a signed contract arrives in, and the one the consumer works with (`ContractSigned`).

* the API body, exactly as API Gateway's SQS integration puts it on the queue: ``{"contract_id",
  "account_id", "signed_at", ...}``;
* the EventBridge event that Event Relay delivers for the ``Contract_Signed__e`` platform event, fields
  under ``detail.payload``;
* the message the Outbound Message endpoint (functions/outbound_message) queues for each notification:
  ``{"message_type": "salesforce.outbound_message", "notification_id", "organization_id", "contract": {...}}``
  with the Contract's fields under their Salesforce names.

Salesforce ids are normalised to their 18-character form, so the idempotency key of a contract is the same
whichever entry point (and id length) it came through.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from billing_consumer.errors import InvalidMessage

OUTBOUND_MESSAGE_TYPE = "salesforce.outbound_message"
EVENT_RELAY_SOURCE_PREFIX = "aws.partner/salesforce.com"
PLATFORM_EVENT = "Contract_Signed__e"
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def to_18(record_id: str) -> str:
    """The case-insensitive 18-character form of a 15- or 18-character Salesforce id.

    Written by hand: it is Salesforce's documented checksum (one suffix letter per 5 characters, a bit per
    upper-case letter) and no library we ship provides it.
    """
    if len(record_id) not in (15, 18) or not record_id.isascii() or not record_id.isalnum():
        raise ValueError("must be a 15 or 18 character Salesforce id")
    base = record_id[:15]
    suffix = ""
    for chunk in (base[0:5], base[5:10], base[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if "A" <= char <= "Z")
        suffix += _SUFFIX_ALPHABET[bits]
    if len(record_id) == 18 and record_id[15:].upper() != suffix:
        raise ValueError("is not a valid 18 character Salesforce id (checksum)")
    return base + suffix


def _id_with_prefix(prefix: str, what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        normalised = to_18(value)
        if not normalised.startswith(prefix):
            raise ValueError(f"must be {what} id (starting {prefix})")
        return normalised

    return check


ContractId = Annotated[str, AfterValidator(_id_with_prefix("800", "a Contract"))]
AccountId = Annotated[str, AfterValidator(_id_with_prefix("001", "an Account"))]
Source = Literal["api", "event_relay", "outbound_message"]


class ContractSigned(BaseModel):
    """A signed contract to bill, whatever entry point it came through."""

    model_config = ConfigDict(frozen=True)

    contract_id: ContractId
    account_id: AccountId
    signed_on: date | None = None
    source: Source
    source_id: str | None = Field(default=None, description="API request id, event id or notification id")

    def billing_fields(self) -> dict[str, Any]:
        """What billing is sent (and what the idempotency record is keyed on: `contract_id`)."""
        return {"contract_id": self.contract_id, "account_id": self.account_id,
                "signed_on": self.signed_on.isoformat() if self.signed_on else None}


class ApiContractSigned(BaseModel):
    """POST /contracts/signed, as validated by API Gateway's model and forwarded verbatim to SQS."""

    contract_id: ContractId
    account_id: AccountId
    signed_at: datetime | None = None
    request_id: str | None = None

    def normalise(self, source_id: str | None) -> ContractSigned:
        return ContractSigned(contract_id=self.contract_id, account_id=self.account_id,
                              signed_on=self.signed_at.date() if self.signed_at else None,
                              source="api", source_id=self.request_id or source_id)


class ContractSignedPayload(BaseModel):
    """The fields of the ``Contract_Signed__e`` platform event (datetimes as ISO text or epoch millis)."""

    Contract_Id__c: ContractId
    Account_Id__c: AccountId
    Signed_At__c: datetime | None = None


class RelayDetail(BaseModel):
    payload: ContractSignedPayload


class RelayEvent(EventBridgeModel):
    """The EventBridge event Event Relay publishes on the partner event bus."""

    detail_type: Literal["Contract_Signed__e"] = Field(alias="detail-type")
    detail: RelayDetail

    def normalise(self) -> ContractSigned:
        if not self.source.startswith(EVENT_RELAY_SOURCE_PREFIX):
            raise ValueError(f"source must start with {EVENT_RELAY_SOURCE_PREFIX}")
        payload = self.detail.payload
        return ContractSigned(contract_id=payload.Contract_Id__c, account_id=payload.Account_Id__c,
                              signed_on=payload.Signed_At__c.date() if payload.Signed_At__c else None,
                              source="event_relay", source_id=self.id)


class OutboundContract(BaseModel):
    """The Contract fields an Outbound Message sends (the outbound message action selects them)."""

    model_config = ConfigDict(extra="allow")

    Id: ContractId
    AccountId: AccountId
    CustomerSignedDate: date | None = None


class OutboundContractMessage(BaseModel):
    message_type: Literal["salesforce.outbound_message"]
    notification_id: str = Field(min_length=1, max_length=40)
    organization_id: str
    contract: OutboundContract

    def normalise(self) -> ContractSigned:
        return ContractSigned(contract_id=self.contract.Id, account_id=self.contract.AccountId,
                              signed_on=self.contract.CustomerSignedDate, source="outbound_message",
                              source_id=self.notification_id)


def describe_errors(exc: ValidationError) -> str:
    """Field paths and messages only: never the input values (they may carry customer data)."""
    return "; ".join(f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors())


def parse_message(body: str, message_id: str | None = None) -> ContractSigned:
    """The contract in an SQS message body, whichever entry point sent it; InvalidMessage if none fits."""
    try:
        document = json.loads(body)
    except (TypeError, ValueError):
        raise InvalidMessage("the message body is not JSON") from None
    except RecursionError:  # not transient: the same body fails the same way on every receive
        raise InvalidMessage("the message body is JSON nested too deeply to read") from None
    if not isinstance(document, dict):
        raise InvalidMessage("the message body is not a JSON object")
    try:
        if "detail-type" in document:
            return RelayEvent.model_validate(document).normalise()
        if document.get("message_type") == OUTBOUND_MESSAGE_TYPE:
            return OutboundContractMessage.model_validate(document).normalise()
        return ApiContractSigned.model_validate(document).normalise(message_id)
    except ValidationError as exc:
        raise InvalidMessage(describe_errors(exc)) from None
    except ValueError as exc:
        raise InvalidMessage(str(exc)) from None


class BillingAccount(BaseModel):
    """What billing answered; stored as the idempotency record's result."""

    account_number: str = Field(min_length=1, max_length=40)
    status: str = "active"
