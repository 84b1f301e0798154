"""The Outbound Message endpoint acks only after every notification is in SQS, once per notification Id,
and answers everything else with a SOAP fault (so Salesforce retries) that names the problem."""

from __future__ import annotations

import io
import json
import logging

import pytest
from outbound_message.soap import ACK

from salesforce_access.observability import logger

from .conftest import ORG_ID, SESSION_ID, contract_fields, soap_message

ACK_SECTION_8 = """<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
 <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>
</soapenv:Body></soapenv:Envelope>"""


def content_type(response: dict) -> str:
    """API Gateway answers with multiValueHeaders when the request came with them (as it does)."""
    if "multiValueHeaders" in response:
        return response["multiValueHeaders"]["Content-Type"][0]
    return response["headers"]["Content-Type"]


def fault_string(response: dict) -> str:
    assert content_type(response) == "text/xml; charset=utf-8"
    assert "<soapenv:Fault>" in response["body"]
    assert "Ack" not in response["body"]
    return response["body"].split("<faultstring>")[1].split("</faultstring>")[0]


def test_ack_is_the_exact_xml_salesforce_expects(outbound):
    response = outbound.post(soap_message([("04l5e00000Gx7QzAAJ", contract_fields())]))
    assert response["statusCode"] == 200
    assert content_type(response) == "text/xml; charset=utf-8"
    assert response["body"] == ACK == ACK_SECTION_8


def test_each_notification_becomes_one_queue_message(outbound):
    notifications = [(f"04l5e00000Gx7Q{i}AAJ", contract_fields(signed=None if i == 2 else "2025-03-01"))
                     for i in range(3)]
    outbound.post(soap_message(notifications))
    messages = outbound.queued()
    bodies = sorted((json.loads(m["Body"]) for m in messages), key=lambda b: b["notification_id"])
    assert [b["notification_id"] for b in bodies] == [n for n, _ in notifications]
    assert bodies[0] == {"message_type": "salesforce.outbound_message", "notification_id": "04l5e00000Gx7Q0AAJ",
                         "organization_id": ORG_ID, "action_id": "04k5e000000CaRkAAK",
                         "contract": contract_fields()}
    assert bodies[2]["contract"]["CustomerSignedDate"] is None  # xsi:nil
    assert {m["MessageAttributes"]["source"]["StringValue"] for m in messages} == {"outbound_message"}


def test_a_retried_message_is_acked_but_not_queued_again(outbound):
    body = soap_message([("04l5e00000Gx7QzAAJ", contract_fields())])
    assert outbound.post(body)["statusCode"] == 200
    assert outbound.post(body)["statusCode"] == 200  # Salesforce retries: same notification Id
    assert len(outbound.queued()) == 1


def test_only_new_notifications_of_a_message_are_queued(outbound):
    outbound.post(soap_message([("04l000000000001AAA", contract_fields())]))
    outbound.post(soap_message([("04l000000000001AAA", contract_fields()),
                                ("04l000000000002AAA", contract_fields("8005e000001AbCeAAK"))]))
    ids = sorted(json.loads(m["Body"])["notification_id"] for m in outbound.queued())
    assert ids == ["04l000000000001AAA", "04l000000000002AAA"]


def test_no_ack_when_the_queue_is_unavailable_and_nothing_is_recorded(outbound):
    body = soap_message([("04l5e00000Gx7QzAAJ", contract_fields())])
    outbound.sqs.delete_queue(QueueUrl=outbound.queue_url)

    response = outbound.post(body)

    assert response["statusCode"] == 500
    assert "retry later" in fault_string(response)
    # The queue comes back: Salesforce's retry is queued (it was not marked as done by the failed attempt).
    outbound.sqs.create_queue(QueueName="contracts")
    assert outbound.post(body)["body"] == ACK
    assert len(outbound.queued()) == 1


def test_the_ack_comes_only_after_sqs_holds_the_message(outbound, monkeypatch):
    from outbound_message import handler as endpoint
    from outbound_message.application import Settings

    order = []
    sqs = endpoint.queue(Settings.from_environment())._sqs
    original = sqs.send_message_batch

    def recording_send(**kwargs):
        result = original(**kwargs)
        order.append(("queued", len(outbound.sqs.receive_message(QueueUrl=outbound.queue_url,
                                                                 VisibilityTimeout=0).get("Messages", []))))
        return result

    monkeypatch.setattr(sqs, "send_message_batch", recording_send)
    response = outbound.post(soap_message([("04l5e00000Gx7QzAAJ", contract_fields())]))
    order.append(("answered", response["body"] == ACK))
    assert order == [("queued", 1), ("answered", True)]


def refusing_sqs(monkeypatch, refuse):
    """The endpoint's SQS client, answering `Failed` for the entries `refuse(notification_id)` picks."""
    from outbound_message import handler as endpoint
    from outbound_message.application import Settings

    sqs = endpoint.queue(Settings.from_environment())._sqs
    original = sqs.send_message_batch

    def send(QueueUrl, Entries):  # boto3's parameter names
        refused = [e for e in Entries if refuse(e["MessageAttributes"]["notification_id"]["StringValue"])]
        result = original(QueueUrl=QueueUrl, Entries=[e for e in Entries if e not in refused]) \
            if len(refused) < len(Entries) else {"Successful": []}
        return {**result, "Failed": [{"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in refused]}

    monkeypatch.setattr(sqs, "send_message_batch", send)


def test_an_entry_sqs_refuses_once_is_sent_again_and_the_message_acked(outbound, monkeypatch):
    refusals = {"04l000000000002AAA": 1}

    def refuse(notification_id):
        left = refusals.get(notification_id, 0)
        refusals[notification_id] = left - 1
        return left > 0

    refusing_sqs(monkeypatch, refuse)
    response = outbound.post(soap_message([("04l000000000001AAA", contract_fields()),
                                           ("04l000000000002AAA", contract_fields("8005e000001AbCeAAK"))]))

    assert response["body"] == ACK
    assert sorted(json.loads(m["Body"])["notification_id"] for m in outbound.queued()) == [
        "04l000000000001AAA", "04l000000000002AAA"]


def test_an_entry_sqs_keeps_refusing_means_no_ack_and_the_retry_queues_only_it(outbound, monkeypatch):
    body = soap_message([("04l000000000001AAA", contract_fields()),
                         ("04l000000000002AAA", contract_fields("8005e000001AbCeAAK"))])
    with monkeypatch.context() as patched:
        refusing_sqs(patched, lambda notification_id: notification_id == "04l000000000002AAA")
        response = outbound.post(body)
    assert response["statusCode"] == 500
    assert "could not be queued" in fault_string(response)
    assert "04l000000000002AAA" not in response["body"]  # the fault says what failed, not which notifications

    assert outbound.post(body)["body"] == ACK  # Salesforce retries the whole message

    ids = [json.loads(m["Body"])["notification_id"] for m in outbound.queued()]
    assert sorted(ids) == ["04l000000000001AAA", "04l000000000002AAA"]  # each once: the first was recorded


def test_wrong_org_is_refused_and_nothing_queued(outbound):
    response = outbound.post(soap_message([("04l5e00000Gx7QzAAJ", contract_fields())],
                                          org_id="00D000000000001AAA"))
    assert response["statusCode"] == 403
    assert "OrganizationId" in fault_string(response)
    assert outbound.queued() == []


def test_a_15_character_configured_org_id_matches(outbound, monkeypatch):
    monkeypatch.setenv("SALESFORCE_ORG_ID", ORG_ID[:15])
    assert outbound.post(soap_message([("04l5e00000Gx7QzAAJ", contract_fields())]))["statusCode"] == 200


def test_unconfigured_org_refuses_everything(outbound, monkeypatch):
    monkeypatch.delenv("SALESFORCE_ORG_ID")
    response = outbound.post(soap_message([("04l5e00000Gx7QzAAJ", contract_fields())]))
    assert response["statusCode"] == 500
    assert "SALESFORCE_ORG_ID" in fault_string(response)
    assert outbound.queued() == []


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("", 400, "not well-formed"),
        ("<soapenv:Envelope", 400, "not well-formed"),
        ("<hello/>", 400, "not a SOAP 1.1 envelope"),
        ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/>'
         "</soapenv:Envelope>", 400, "no notifications element"),
        (soap_message([], ), 400, "no Notification"),
        (soap_message([("04l5e00000Gx7QzAAJ", {"Id": "0015e00000ZkM3hAAF"})], sobject="Account"), 400,
         "Contract notifications only, not Account"),
        (soap_message([(f"04l{i:015d}", contract_fields()) for i in range(101)]), 400, "at most 100"),
    ],
)
def test_bad_messages_get_a_client_fault_naming_the_problem(outbound, body, status, says):
    response = outbound.post(body)
    assert response["statusCode"] == status
    assert says in fault_string(response)
    assert "<faultcode>soapenv:Client</faultcode>" in response["body"]
    assert outbound.queued() == []


@pytest.mark.parametrize(
    "attack",
    [
        # billion laughs: entity expansion
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">&lol2;</soapenv:Envelope>",
        # XXE: an external entity reading a local file
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">&xxe;</soapenv:Envelope>",
        # a bare DOCTYPE is refused too: SOAP messages must not carry one
        '<!DOCTYPE soapenv:Envelope><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"/>',
    ],
)
def test_dtds_and_entities_are_refused(outbound, attack):
    response = outbound.post(attack)
    assert response["statusCode"] == 400
    assert "DTDs and entity declarations are not accepted" in fault_string(response)
    assert "root:" not in response["body"]


def test_base64_encoded_bodies_are_read(outbound):
    response = outbound.post(soap_message([("04l5e00000Gx7QzAAJ", contract_fields())]), base64_encoded=True)
    assert response["body"] == ACK


def test_a_body_that_is_not_base64_or_too_large_is_a_client_fault(outbound):
    from outbound_message import handler as endpoint

    from .conftest import api_event

    event = api_event("not base64 at all!")
    event["isBase64Encoded"] = True
    broken = endpoint.handler(event, outbound.context_factory())
    assert broken["statusCode"] == 400
    assert "not valid base64" in fault_string(broken)

    huge = outbound.post("<a>" + "x" * (6 * 1024 * 1024) + "</a>")
    assert huge["statusCode"] == 413
    assert "exceeds" in fault_string(huge)
    assert "<faultcode>soapenv:Client</faultcode>" in huge["body"]
    assert outbound.queued() == []


def test_the_session_id_is_neither_queued_nor_logged(outbound):
    stream = io.StringIO()
    log_handler = logging.StreamHandler(stream)
    log_handler.setFormatter(logger.registered_formatter)
    logger.addHandler(log_handler)
    try:
        outbound.post(soap_message([("04l5e00000Gx7QzAAJ", contract_fields())]))
        outbound.post(soap_message([("04l5e00000Gx7QzAAJ", contract_fields())], org_id="00D000000000001AAA"))
    finally:
        logging.getLogger(logger.name).removeHandler(log_handler)
    logs = stream.getvalue()
    assert "outbound message queued" in logs
    assert SESSION_ID not in logs
    assert all(SESSION_ID not in m["Body"] for m in outbound.queued())


def test_other_routes_are_not_found(outbound, lambda_context):
    from outbound_message import handler as endpoint

    from .conftest import api_event

    event = api_event("x")
    event["path"] = event["resource"] = "/outbound/other"
    assert endpoint.handler(event, lambda_context)["statusCode"] == 404
