"""The three message shapes normalise to one contract; anything else is refused with a clear reason."""

from __future__ import annotations

import json

import pytest
from billing_consumer.errors import InvalidMessage
from billing_consumer.models import parse_message, to_18

from .conftest import api_body, outbound_message, relay_event

CONTRACT_18 = "8005e000001AbCdAAK"
ACCOUNT_18 = "0015e00000ZkM3hAAF"


def test_to_18_matches_salesforce_ids():
    assert to_18("001D000000IqhSL") == "001D000000IqhSLIAZ"  # the example in the REST API docs
    assert to_18("001D000000IqhSLiaz") == "001D000000IqhSLIAZ"  # the suffix is case-insensitive
    assert to_18(to_18("8005e000001AbCd")) == to_18("8005e000001AbCd")
    with pytest.raises(ValueError, match="checksum"):
        to_18("001D000000IqhSLAAA")
    with pytest.raises(ValueError, match="15 or 18"):
        to_18("001D000000IqhS")


def test_every_entry_point_gives_the_same_contract():
    contract_15, account_15 = CONTRACT_18[:15], ACCOUNT_18[:15]
    shapes = {
        "api": api_body(contract_15, account_15),
        "event_relay": relay_event(CONTRACT_18, ACCOUNT_18),
        "outbound_message": outbound_message(CONTRACT_18, account_15),
    }
    parsed = {name: parse_message(json.dumps(body), "sqs-message-id") for name, body in shapes.items()}
    for name, contract in parsed.items():
        assert contract.source == name
        assert contract.contract_id == CONTRACT_18
        assert contract.account_id == ACCOUNT_18
        assert contract.billing_fields() == {"contract_id": CONTRACT_18, "account_id": ACCOUNT_18,
                                             "signed_on": "2025-03-01"}
    assert parsed["api"].source_id == "sqs-message-id"
    assert parsed["event_relay"].source_id == "7a3f1c2e-0000-4000-8000-000000000001"
    assert parsed["outbound_message"].source_id == "04l5e00000Gx7QzAAJ"


def test_api_request_id_wins_over_the_message_id():
    body = api_body(CONTRACT_18, ACCOUNT_18, request_id="c0ffee")
    assert parse_message(json.dumps(body), "m-1").source_id == "c0ffee"


def test_event_relay_datetime_as_epoch_millis_and_missing():
    assert parse_message(json.dumps(relay_event(CONTRACT_18, ACCOUNT_18, signed_at=1740821400000))).signed_on \
        .isoformat() == "2025-03-01"
    assert parse_message(json.dumps(relay_event(CONTRACT_18, ACCOUNT_18, signed_at=None))).signed_on is None


def test_an_event_from_another_source_is_refused():
    event = {**relay_event(CONTRACT_18, ACCOUNT_18), "source": "my.app"}
    with pytest.raises(InvalidMessage, match=r"aws\.partner/salesforce\.com"):
        parse_message(json.dumps(event))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contract_id": CONTRACT_18}, "account_id: Field required"),
        ({"contract_id": ACCOUNT_18, "account_id": ACCOUNT_18}, "contract_id: Value error, must be a Contract id"),
        ({"contract_id": CONTRACT_18, "account_id": ACCOUNT_18, "signed_at": "yesterday"}, "signed_at"),
        ({**outbound_message(CONTRACT_18, ACCOUNT_18), "contract": {"Id": CONTRACT_18}}, "contract.AccountId"),
        ({**relay_event(CONTRACT_18, ACCOUNT_18), "detail": {"payload": {}}}, "detail.payload.Contract_Id__c"),
    ],
)
def test_invalid_messages_name_the_field(body, message):
    with pytest.raises(InvalidMessage) as caught:
        parse_message(json.dumps(body))
    assert message in str(caught.value)
    assert caught.value.reason == "invalid_message"
