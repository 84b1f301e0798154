"""The endpoint's domain: check the sender, turn Contract notifications into queue messages, skip the ones
already queued. No AWS here: `queue` is the NotificationQueue port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from outbound_message.queueing import OutgoingMessage
from outbound_message.soap import OutboundMessage, SoapFault

MESSAGE_TYPE = "salesforce.outbound_message"  # what the billing consumer recognises
SOBJECT = "Contract"


class QueuePort(Protocol):
    def already_queued(self, notification_ids: list[str]) -> set[str]: ...

    def send(self, messages: list[OutgoingMessage]) -> None: ...


@dataclass(frozen=True)
class Accepted:
    queued: int
    duplicates: int


def same_org(expected: str, received: str) -> bool:
    """Org ids compare on their case-sensitive 15-character form (the message carries 18 characters)."""
    return len(expected) in (15, 18) and expected[:15] == received[:15]


def accept(message: OutboundMessage, expected_org_id: str, queue: QueuePort) -> Accepted:
    """Queue the notifications not queued before. Returns only once SQS holds all of them."""
    if not same_org(expected_org_id, message.organization_id):
        raise SoapFault("OrganizationId is not the org this endpoint serves", status=403, client=True)
    wrong = sorted({n.sobject_type for n in message.notifications if n.sobject_type != SOBJECT})
    if wrong:
        raise SoapFault(f"this endpoint accepts Contract notifications only, not {', '.join(wrong)}",
                        status=400, client=True)
    unique = list({n.id: n for n in message.notifications}.values())
    seen = queue.already_queued([n.id for n in unique])
    fresh = [n for n in unique if n.id not in seen]
    queue.send([
        OutgoingMessage(n.id, {"message_type": MESSAGE_TYPE, "notification_id": n.id,
                               "organization_id": message.organization_id, "action_id": message.action_id,
                               "contract": n.fields})
        for n in fresh
    ])
    return Accepted(queued=len(fresh), duplicates=len(message.notifications) - len(fresh))
