"""Fixtures for the Outbound Message endpoint: moto SQS + DynamoDB and API Gateway events with SOAP bodies."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from outbound_message import handler as endpoint

ROOT = Path(__file__).resolve().parents[3]
ORG_ID = "00D5e000000KQ2eEAG"
SESSION_ID = "00D5e000000KQ2e!AQ0AQHvq.fake.session.for.tests"


def soap_message(notifications: list[tuple[str, dict[str, str | None]]], *, org_id: str = ORG_ID,
                 sobject: str = "Contract", session_id: str | None = SESSION_ID) -> str:
    """An Outbound Message as Salesforce sends it (salesforce-api.md section 8)."""
    items = []
    for notification_id, fields in notifications:
        values = "".join(f'<sf:{k} xsi:nil="true"/>' if v is None else f"<sf:{k}>{v}</sf:{k}>"
                         for k, v in fields.items())
        items.append(f"<Notification><Id>{notification_id}</Id>"
                     f'<sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
                     f"{values}</sObject></Notification>")
    session = f"<SessionId>{session_id}</SessionId>" if session_id else '<SessionId xsi:nil="true"/>'
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            f"<OrganizationId>{org_id}</OrganizationId><ActionId>04k5e000000CaRkAAK</ActionId>{session}"
            "<EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/59.0/00D5e000000KQ2e</EnterpriseUrl>"
            "<PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/59.0/00D5e000000KQ2e</PartnerUrl>"
            + "".join(items) + "</notifications></soapenv:Body></soapenv:Envelope>")


def contract_fields(contract_id: str = "8005e000001AbCdAAK", account_id: str = "0015e00000ZkM3hAAF",
                    signed: str | None = "2025-03-01") -> dict[str, str | None]:
    return {"Id": contract_id, "AccountId": account_id, "CustomerSignedDate": signed, "ContractNumber": "00000100"}


def api_event(body: str, *, base64_encoded: bool = False) -> dict[str, Any]:
    """The sample event from events/, with another body."""
    event = copy.deepcopy(json.loads((ROOT / "events" / "contract-signed-outbound-message.json").read_text()))
    event["body"] = base64.b64encode(body.encode()).decode() if base64_encoded else body
    event["isBase64Encoded"] = base64_encoded
    return event


class Endpoint:
    def __init__(self, sqs: Any, queue_url: str, context_factory: Any):
        self.sqs = sqs
        self.queue_url = queue_url
        self.context_factory = context_factory

    def post(self, body: str, **kwargs: Any) -> dict[str, Any]:
        return endpoint.handler(api_event(body, **kwargs), self.context_factory())

    def queued(self) -> list[dict[str, Any]]:
        messages = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                             MessageAttributeNames=["All"], VisibilityTimeout=60).get("Messages", [])
            if not batch:
                return messages
            messages += batch


@pytest.fixture
def outbound(aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> Iterator[Endpoint]:
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="contracts")["QueueUrl"]
    boto3.client("dynamodb").create_table(
        TableName="state", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    monkeypatch.setenv("CONTRACTS_QUEUE_URL", queue_url)
    monkeypatch.setenv("STATE_TABLE_NAME", "state")
    monkeypatch.setenv("SALESFORCE_ORG_ID", ORG_ID)
    endpoint.queue.cache_clear()
    yield Endpoint(sqs, queue_url, lambda: type(lambda_context)())
    endpoint.queue.cache_clear()
