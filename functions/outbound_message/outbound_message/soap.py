"""The Outbound Message SOAP contract: parse ``notifications``, answer the Ack or a SOAP fault.

XML is parsed by defusedxml's ElementTree with DTDs forbidden: SOAP 1.1 forbids a DTD in a message, so
refusing one loses nothing, and without a DTD there are no entities to expand or fetch. The body goes in
as bytes, so expat honours the encoding its XML declaration names (ISO-8859-1, UTF-16).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.parsers import expat
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from pydantic import BaseModel, Field, ValidationError

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100  # Salesforce sends at most 100 notifications per message
CONTENT_TYPE = "text/xml; charset=utf-8"

# The acknowledgement Salesforce requires (salesforce-api.md section 8): one Ack covers every notification.
ACK = (
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>\n'
    ' <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>\n'
    "</soapenv:Body></soapenv:Envelope>"
)


class SoapFault(Exception):
    """Answered as a SOAP 1.1 fault; Salesforce retries the message. `client` faults are the sender's."""

    def __init__(self, message: str, *, status: int, client: bool):
        super().__init__(message)
        self.status = status
        self.client = client

    def xml(self) -> str:
        code = "soapenv:Client" if self.client else "soapenv:Server"
        return (f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body><soapenv:Fault>'
                f"<faultcode>{code}</faultcode><faultstring>{escape(str(self))}</faultstring>"
                "</soapenv:Fault></soapenv:Body></soapenv:Envelope>")


def bad_request(message: str) -> SoapFault:
    return SoapFault(message, status=400, client=True)


class Notification(BaseModel):
    id: str = Field(min_length=1, max_length=40)
    sobject_type: str
    fields: dict[str, str | None]


class OutboundMessage(BaseModel):
    """The parts of ``notifications()`` we use. The SessionId is deliberately not kept: it is a credential."""

    organization_id: str
    action_id: str | None = None
    notifications: list[Notification]


def parse_xml(data: bytes) -> Element:
    """The XML tree of a request body; a client fault for a DTD or entity, or for XML that is not well-formed."""
    try:
        return fromstring(data, forbid_dtd=True)
    except DefusedXmlException:
        raise bad_request("DTDs and entity declarations are not accepted") from None
    except ParseError as exc:
        raise bad_request(f"the body is not well-formed XML: {expat.ErrorString(exc.code)}") from None


def _text(parent: Element, tag: str) -> str | None:
    child = parent.find(f"{{{OUTBOUND_NS}}}{tag}")
    if child is None or child.get(f"{{{XSI_NS}}}nil") == "true":
        return None
    return (child.text or "").strip()


def _problems(exc: ValidationError) -> str:
    """Each invalid field by its SOAP name, never its value."""
    names = {"id": "Id", "sobject_type": "sObject xsi:type", "fields": "sObject fields"}
    return "; ".join(f"{names.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else 'Notification'}: {e['msg']}"
                     for e in exc.errors(include_input=False, include_url=False))


def parse_notifications(data: bytes) -> OutboundMessage:
    """The organisation and the notifications of an Outbound Message; a client fault names what is wrong."""
    root = parse_xml(data)
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise bad_request("the body is not a SOAP 1.1 envelope")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    request = body.find(f"{{{OUTBOUND_NS}}}notifications") if body is not None else None
    if request is None:
        raise bad_request(f"the SOAP body has no notifications element in namespace {OUTBOUND_NS}")
    organization_id = _text(request, "OrganizationId")
    if not organization_id:
        raise bad_request("OrganizationId is missing")
    notifications = []
    for element in request.findall(f"{{{OUTBOUND_NS}}}Notification"):
        notification_id = _text(element, "Id")
        sobject = element.find(f"{{{OUTBOUND_NS}}}sObject")
        if not notification_id or sobject is None:
            raise bad_request("every Notification needs an Id and an sObject")
        declared = sobject.get(f"{{{XSI_NS}}}type", "")
        fields = {}
        for field in sobject:
            if not field.tag.startswith(f"{{{SOBJECT_NS}}}"):
                continue
            name = field.tag.split("}", 1)[1]
            fields[name] = None if field.get(f"{{{XSI_NS}}}nil") == "true" else (field.text or "").strip()
        try:
            notifications.append(Notification(id=notification_id, sobject_type=declared.split(":")[-1],
                                              fields=fields))
        except ValidationError as exc:  # the sender's mistake (e.g. an Id over 40 characters), not ours
            raise bad_request(f"Notification {len(notifications) + 1}: {_problems(exc)}") from None
    if not notifications:
        raise bad_request("the message has no Notification")
    if len(notifications) > MAX_NOTIFICATIONS:
        raise bad_request(f"at most {MAX_NOTIFICATIONS} notifications per message")
    return OutboundMessage(organization_id=organization_id, action_id=_text(request, "ActionId"),
                           notifications=notifications)
