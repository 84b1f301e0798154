"""Pattern 2's Outbound Message endpoint fed malformed SOAP, with moto SQS and DynamoDB.

Starting from the example message of docs/api/outbound-message-openapi.yaml, hypothesis builds messages with
1-100 notifications and arbitrary field text, then breaks them (truncated, wrong namespaces, another sObject,
another org, no Id). Every answer: never a 5xx for the sender's mistake, always a SOAP 1.1 envelope (the Ack,
or a fault whose faultstring names the problem), never a stack trace; a fault queues nothing and records no
notification as seen, an Ack means every new notification is on the queue exactly once.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

import boto3
import pytest
import yaml
from hypothesis import event, example, given
from hypothesis import strategies as st
from outbound_message import handler as endpoint

from .conftest import FUZZ, OVERSIZED, TRACEBACK, proxy_event, truncations

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "docs" / "api" / "outbound-message-openapi.yaml").read_text())
SPEC_EXAMPLE = SPEC["paths"]["/outbound/contracts"]["post"]["requestBody"]["content"]["text/xml"]["example"]
ORG_ID = "00D5e000000KQ2eEAG"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
# XML 1.0 allows these characters only; anything else makes a message not well-formed.
XML_CHAR = re.compile("^[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*$")


def message(notifications: list[tuple[str, dict[str, str | None]]], *, org_id: str = ORG_ID,
            sobject: str = "Contract", outbound_ns: str = OUTBOUND_NS, soap_ns: str = SOAP_ENV,
            sobject_ns: str = SOBJECT_NS) -> str:
    """An Outbound Message as Salesforce sends it, every value escaped."""
    items = []
    for notification_id, fields in notifications:
        values = "".join(f'<sf:{k} xsi:nil="true"/>' if v is None else f"<sf:{k}>{escape(v)}</sf:{k}>"
                         for k, v in fields.items())
        items.append(f"<Notification><Id>{escape(notification_id)}</Id><sObject xsi:type={quoteattr('sf:' + sobject)}"
                     f" xmlns:sf={quoteattr(sobject_ns)}>{values}</sObject></Notification>")
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv={quoteattr(soap_ns)} '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            f"<notifications xmlns={quoteattr(outbound_ns)}><OrganizationId>{escape(org_id)}</OrganizationId>"
            '<ActionId>04k5e000000CaRkAAK</ActionId><SessionId xsi:nil="true"/>'
            + "".join(items) + "</notifications></soapenv:Body></soapenv:Envelope>")


def contract(contract_id: str = "8005e000001AbCdAAK", **extra: str | None) -> dict[str, str | None]:
    return {"Id": contract_id, "AccountId": "0015e00000ZkM3hAAF", "CustomerSignedDate": "2025-03-01", **extra}


@dataclass
class Endpoint:
    sqs: Any
    dynamodb: Any
    queue_url: str
    context_factory: Any
    seen: set[str] = field(default_factory=set)  # notification ids acknowledged so far in this test

    def post(self, body: str | bytes, path: str = "/outbound/contracts", *, binary: bool = False) -> dict[str, Any]:
        raw = body.encode("utf-8") if isinstance(body, str) else body
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
        return endpoint.handler(proxy_event("POST", path, headers=headers, body=raw, binary=binary),
                                self.context_factory())

    def queued(self) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def recorded(self) -> int:
        return self.dynamodb.scan(TableName="state", Select="COUNT")["Count"]


@pytest.fixture
def outbound(aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> Iterator[Endpoint]:
    sqs, dynamodb = boto3.client("sqs"), boto3.client("dynamodb")
    queue_url = sqs.create_queue(QueueName="contracts")["QueueUrl"]
    dynamodb.create_table(TableName="state", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    monkeypatch.setenv("CONTRACTS_QUEUE_URL", queue_url)
    monkeypatch.setenv("STATE_TABLE_NAME", "state")
    monkeypatch.setenv("SALESFORCE_ORG_ID", ORG_ID)
    endpoint.queue.cache_clear()
    yield Endpoint(sqs, dynamodb, queue_url, type(lambda_context))
    endpoint.queue.cache_clear()


def soap_answer(response: dict[str, Any]) -> tuple[int, str | None, str | None]:
    """(status, faultcode, faultstring) of a SOAP answer; (200, None, None) for the Ack. Fails on anything else."""
    status, text = response["statusCode"], response.get("body") or ""
    headers = {**(response.get("headers") or {}),
               **{k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items() if v}}
    assert "xml" in headers.get("Content-Type", ""), headers
    assert not TRACEBACK.search(text), text
    root = ElementTree.fromstring(text)  # noqa: S314 - the endpoint's own answer
    body = root.find(f"{{{SOAP_ENV}}}Body")
    assert root.tag == f"{{{SOAP_ENV}}}Envelope", text
    assert body is not None, text
    if status == 200:
        assert body.findtext(f"{{{OUTBOUND_NS}}}notificationsResponse/{{{OUTBOUND_NS}}}Ack") == "true", text
        return status, None, None
    fault = body.find(f"{{{SOAP_ENV}}}Fault")
    assert fault is not None, text
    faultstring = fault.findtext("faultstring") or ""
    assert faultstring.strip(), f"a fault names the problem: {text}"
    return status, fault.findtext("faultcode"), faultstring


def assert_client_fault(outbound: Endpoint, response: dict[str, Any], *, status: int = 400,
                        mentions: str | None = None) -> str:
    """A soapenv:Client fault with `status`, and nothing queued or recorded."""
    got, code, text = soap_answer(response)
    assert (got, code) == (status, "soapenv:Client"), (got, code, text)
    assert outbound.queued() == len(outbound.seen), "a refused message queues nothing"
    assert outbound.recorded() == len(outbound.seen), "a refused message records no notification as seen"
    if mentions:
        assert mentions.lower() in (text or "").lower(), text
    return text or ""


# -- the documented example, then generated messages ---------------------------------------------------

def test_the_documented_example_is_acknowledged(outbound: Endpoint) -> None:
    status, _, _ = soap_answer(outbound.post(SPEC_EXAMPLE))
    assert status == 200
    assert outbound.queued() == 1


text_values = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)
notification_ids = st.one_of(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                                     min_size=15, max_size=18), text_values.filter(lambda s: 0 < len(s) <= 40))
notifications = st.lists(st.tuples(notification_ids, st.dictionaries(
    st.sampled_from(["Id", "AccountId", "CustomerSignedDate", "ContractNumber", "Description", "Status"]),
    st.one_of(st.none(), text_values), min_size=1, max_size=6)), min_size=1, max_size=100)
BREAKS = ["none", "truncate", "outbound_ns", "soap_ns", "sobject_ns", "sobject", "org", "blank_org"]


@given(items=notifications, breaking=st.sampled_from(BREAKS), cut=st.floats(0.01, 0.99))
@example(items=[("04l5e00000Gx7QzAAJ", contract())], breaking="none", cut=0.5)
@example(items=[("04l5e00000Gx7QzAAJ", contract(Description="a ]]> b <![CDATA[ & &amp; \u2028 \U0001f600"))],
         breaking="none", cut=0.5)
@example(items=[("04l5e00000Gx7QzAAJ", contract(Description="bell \x07 null \x00"))], breaking="none", cut=0.5)
@example(items=[("   ", contract())], breaking="none", cut=0.5)
@FUZZ
def test_generated_messages(outbound: Endpoint, items: list[tuple[str, dict[str, str | None]]], breaking: str,
                            cut: float) -> None:
    kwargs: dict[str, Any] = {
        "outbound_ns": {"outbound_ns": "http://soap.sforce.com/2005/09/inbound"},
        "soap_ns": {"soap_ns": "http://www.w3.org/2003/05/soap-envelope"},  # SOAP 1.2, not what Salesforce sends
        "sobject_ns": {"sobject_ns": "urn:sobject.partner.soap.sforce.com"},
        "sobject": {"sobject": "Account"},
        "org": {"org_id": "00D000000000001AAA"},
        "blank_org": {"org_id": "  "},
    }.get(breaking, {})
    text = message(items, **kwargs)
    if breaking == "truncate":
        text = text[:max(1, int(len(text) * cut))]
    well_formed = all(XML_CHAR.match(nid) and all(v is None or XML_CHAR.match(v) for v in fields.values())
                      for nid, fields in items)
    has_ids = all(nid.strip() for nid, _ in items)
    response = outbound.post(text)
    status, _, reason = soap_answer(response)
    event(f"{breaking}: {status}")
    if breaking in ("none", "sobject_ns") and well_formed and has_ids:
        # a foreign sObject namespace only hides the fields: the consumer refuses the message to the DLQ
        assert status == 200, reason
        new = {nid.strip() for nid, _ in items} - outbound.seen
        outbound.seen |= new
        assert outbound.queued() == len(outbound.seen), "every new notification queued exactly once"
        assert outbound.recorded() == len(outbound.seen)
    else:
        assert_client_fault(outbound, response, status=403 if breaking == "org" and well_formed and has_ids else 400)


# -- attacks and limits ---------------------------------------------------------------------------------

BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                            for i in range(1, 10))
                  + f"]><soapenv:Envelope xmlns:soapenv=\"{SOAP_ENV}\"><soapenv:Body>&lol9;</soapenv:Body>"
                    "</soapenv:Envelope>")
XXE = ('<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       + message([("04l5e00000Gx7QzAAJ", contract(Description="&xxe;"))]).split("?>", 1)[1].replace("&amp;xxe;",
                                                                                                      "&xxe;"))
EXTERNAL_DTD = ('<?xml version="1.0"?><!DOCTYPE foo SYSTEM "http://169.254.169.254/latest/meta-data/">'
                + message([("04l5e00000Gx7QzAAJ", contract())]).split("?>", 1)[1])
PARAMETER_ENTITY = ('<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY % remote SYSTEM "http://127.0.0.1:1/x.dtd">'
                    "%remote;]><a/>")


ATTACKS = {"billion-laughs": BILLION_LAUGHS, "xxe-file": XXE, "external-dtd": EXTERNAL_DTD,
           "parameter-entity": PARAMETER_ENTITY}


def test_dtds_and_entities_are_refused_without_expansion(outbound: Endpoint) -> None:
    for name, attack in ATTACKS.items():
        started = time.perf_counter()
        response = outbound.post(attack)
        assert time.perf_counter() - started < 2, f"{name}: nothing was expanded or fetched"
        reason = assert_client_fault(outbound, response, mentions="DTD")
        assert "root:" not in reason, name


def test_truncated_at_every_point_is_a_client_fault(outbound: Endpoint) -> None:
    whole = message([("04l5e00000Gx7QzAAJ", contract())])
    for part in truncations(whole, points=40):
        assert_client_fault(outbound, outbound.post(part))


def test_not_a_message_is_a_client_fault(outbound: Endpoint) -> None:
    for body in ["", " ", "null", "{}", "<a/>", "<soapenv:Envelope/>", "\ufeff", "<?xml?>", b"\xff\xfe<\x00a\x00/>"]:
        assert_client_fault(outbound, outbound.post(body))


def test_101_notifications_are_refused_and_none_queued(outbound: Endpoint) -> None:
    items = [(f"04l5e00000Gx{i:03d}AAJ", contract()) for i in range(101)]
    assert_client_fault(outbound, outbound.post(message(items)), mentions="100")


def test_100_notifications_are_all_queued(outbound: Endpoint) -> None:
    items = [(f"04l5e00000Gx{i:03d}AAJ", contract()) for i in range(100)]
    status, _, reason = soap_answer(outbound.post(message(items)))
    assert status == 200, reason
    assert outbound.queued() == 100


def test_a_non_contract_among_contracts_refuses_the_whole_message(outbound: Endpoint) -> None:
    text = message([("04l5e00000Gx001AAJ", contract())]).replace(
        "</notifications>", message([("04l5e00000Gx002AAJ", {"Id": "0015e00000ZkM3hAAF"})], sobject="Account")
        .split("<ActionId>04k5e000000CaRkAAK</ActionId><SessionId xsi:nil=\"true\"/>", 1)[1]
        .split("</notifications>", 1)[0] + "</notifications>")
    assert text.count("<Notification>") == 2
    assert_client_fault(outbound, outbound.post(text), mentions="Account")


def test_notification_without_id_or_sobject_is_refused(outbound: Endpoint) -> None:
    text = message([("04l5e00000Gx001AAJ", contract())])
    assert_client_fault(outbound, outbound.post(text.replace("<Id>04l5e00000Gx001AAJ</Id>", "")), mentions="Id")
    no_sobject = re.sub(r"<sObject .*?</sObject>", "", text)
    assert_client_fault(outbound, outbound.post(no_sobject), mentions="sObject")


def test_huge_body_is_answered_in_soap_and_never_half_queued(outbound: Endpoint) -> None:
    """A 300 KB field is more than one SQS message holds: whatever the answer, it is SOAP and all-or-nothing."""
    items = [("04l5e00000Gx001AAJ", contract()), ("04l5e00000Gx002AAJ", contract(Description="x" * OVERSIZED))]
    status, code, reason = soap_answer(outbound.post(message(items)))
    if status == 200:
        assert outbound.queued() == 2
    else:
        assert code in ("soapenv:Client", "soapenv:Server"), reason
        assert outbound.recorded() == outbound.queued(), "only what SQS accepted is recorded as seen"


def test_other_paths_answer_a_soap_fault(outbound: Endpoint) -> None:
    assert_client_fault(outbound, outbound.post(message([("04l5e00000Gx001AAJ", contract())]), path="/outbound"),
                        status=404)


# -- found by this suite, since fixed ------------------------------------------------------------------

def test_overlong_notification_id_is_a_client_fault(outbound: Endpoint) -> None:
    text = assert_client_fault(outbound, outbound.post(message([("0" * 41, contract())])), mentions="Id")
    assert "40 characters" in text, text
    assert "0" * 41 not in text, "the value sent is not echoed"


def test_session_id_is_neither_queued_nor_answered(outbound: Endpoint) -> None:
    text = message([("04l5e00000Gx001AAJ", contract())]).replace(
        '<SessionId xsi:nil="true"/>', "<SessionId>00D5e000000KQ2e!AQ0AQFuzzSessionValue.x</SessionId>")
    response = outbound.post(text)
    assert soap_answer(response)[0] == 200
    [queued] = outbound.sqs.receive_message(QueueUrl=outbound.queue_url, MessageAttributeNames=["All"])["Messages"]
    assert "AQ0AQFuzzSessionValue" not in json.dumps(queued)
    assert "AQ0AQFuzzSessionValue" not in response["body"]


def test_base64_bodies_are_read_as_bytes(outbound: Endpoint) -> None:
    """A base64 body (binary media types, the local stack): bytes that are not UTF-8 were a 500 from Powertools'
    decoded_body; now they reach the XML parser, which refuses garbage and honours the declared encoding."""
    assert_client_fault(outbound, outbound.post(b"\x80\xff<", binary=True), mentions="XML")
    text = message([("04l5e00000Gx001AAJ", contract(Description="Z\u00fcrich"))])
    latin1 = text.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').encode("latin-1")
    assert soap_answer(outbound.post(latin1, binary=True))[0] == 200
    [queued] = outbound.sqs.receive_message(QueueUrl=outbound.queue_url)["Messages"]
    assert "Z\u00fcrich" in json.dumps(json.loads(queued["Body"]), ensure_ascii=False)
