"""Every record that makes a delivery idempotent outlives every copy of that delivery that can still arrive.

A copy can arrive late from a dead-letter queue. For a standard queue a message moved to its DLQ keeps its
enqueue timestamp, so it stays in the DLQ until enqueue + the DLQ's retention; a redrive (StartMessageMoveTask)
makes it a new message whose retention starts again, on the source queue and then on the DLQ once more
(SQS developer guide, "dead-letter queue retention" and "dead-letter queue redrive"). So a copy enqueued when
the record was written can be delivered up to 2 x max(source retention, DLQ retention) later, after one redrive
late in the DLQ's retention. Another copy may also be enqueued after the first was processed: Salesforce
retries an unacknowledged Outbound Message for up to 24 hours, and each entry point of the contracts queue
(API, Event Relay, Outbound Message) may carry the same contract. The idempotency records must outlive both.

Both the value template.yaml sets and the function's own default (used when the variable is unset) are checked.
"""

from __future__ import annotations

from typing import Any

import pytest

DAY = 86400
SQS_DEFAULT_RETENTION = 4 * DAY
SALESFORCE_OUTBOUND_RETRY_WINDOW = 1 * DAY  # shared/reference/salesforce-api.md: "24 h retry window"


def _queue_of(template: dict[str, Any], function: str) -> str:
    events = template["Resources"][function]["Properties"]["Events"]
    queues = [e["Properties"]["Queue"]["Fn::GetAtt"] for e in events.values() if e["Type"] == "SQS"]
    assert len(queues) == 1, (function, queues)
    queue = queues[0]
    return str(queue[0] if isinstance(queue, list) else queue.split(".", 1)[0])


def _retention(template: dict[str, Any], queue: str) -> int:
    return int(template["Resources"][queue]["Properties"].get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION))


def longest_late_delivery(template: dict[str, Any], function: str) -> int:
    """Seconds after a message is enqueued that a copy of it may still reach `function` (one redrive)."""
    source = _queue_of(template, function)
    redrive = template["Resources"][source]["Properties"]["RedrivePolicy"]
    target = redrive["deadLetterTargetArn"]["Fn::GetAtt"]
    dlq = str(target[0] if isinstance(target, list) else target.split(".", 1)[0])
    return 2 * max(_retention(template, source), _retention(template, dlq))


def _variable(template: dict[str, Any], function: str, name: str) -> str | None:
    variables = template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
    value = variables.get(name, template["Globals"]["Function"]["Environment"]["Variables"].get(name))
    return None if value is None else str(value)


def _settings_default(module: str, field: str) -> int:
    settings = __import__(module, fromlist=["Settings"]).Settings
    return int(settings.model_fields[field].default)


def _ttls(template: dict[str, Any], function: str, variable: str, module: str, field: str,
          unit: int = 1) -> dict[str, int]:
    found = {"function default": _settings_default(module, field) * unit}
    value = _variable(template, function, variable)
    if value is not None:
        found[f"template.yaml {variable}"] = int(value) * unit
    return found


def test_billing_idempotency_outlives_every_redrivable_contract(template: dict[str, Any]) -> None:
    needed = longest_late_delivery(template, "BillingConsumerFunction") + SALESFORCE_OUTBOUND_RETRY_WINDOW
    ttls = _ttls(template, "BillingConsumerFunction", "BILLING_IDEMPOTENCY_TTL_SECONDS",
                 "billing_consumer.settings", "idempotency_ttl")
    short = {where: f"{ttl / DAY:g} days" for where, ttl in ttls.items() if ttl < needed}
    assert short == {}, f"a contract can be redriven up to {needed / DAY:g} days later and billed twice: {short}"
    assert "template.yaml BILLING_IDEMPOTENCY_TTL_SECONDS" in ttls, "template.yaml should state the TTL it relies on"


def test_the_order_ledger_outlives_every_redrivable_order(template: dict[str, Any]) -> None:
    """A redriven old version must find the ledger entry of the newer one, or it overwrites the order."""
    needed = longest_late_delivery(template, "OrderIntakeWorkerFunction")
    for function in ("OrderIntakeWorkerFunction", "OrderIntakeApiFunction"):
        ttls = _ttls(template, function, "ORDER_LEDGER_TTL_DAYS", "order_intake.config", "ledger_ttl_days", DAY)
        short = {where: f"{ttl / DAY:g} days" for where, ttl in ttls.items() if ttl < needed}
        assert short == {}, (function, f"an order can be redriven up to {needed / DAY:g} days later: {short}")


def test_outbound_deduplication_outlives_salesforces_retries(template: dict[str, Any]) -> None:
    ttls = _ttls(template, "OutboundMessageFunction", "OUTBOUND_DEDUP_TTL_SECONDS",
                 "outbound_message.application", "dedup_ttl_seconds")
    short = {where: ttl for where, ttl in ttls.items() if ttl < SALESFORCE_OUTBOUND_RETRY_WINDOW}
    assert short == {}


@pytest.mark.parametrize(("source", "dlq", "expected_days"), [(14, 14, 28), (4, 14, 28), (14, 4, 28), (1, 1, 2)])
def test_a_late_delivery_spans_one_redrive(source: int, dlq: int, expected_days: int) -> None:
    """Guards the bound: two stays, each as long as the longer retention of the source queue and its DLQ."""
    template = {"Resources": {
        "F": {"Properties": {"Events": {"E": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["Q", "Arn"]}}}}}},
        "Q": {"Properties": {"MessageRetentionPeriod": source * DAY,
                             "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": "D.Arn"}}}},
        "D": {"Properties": {"MessageRetentionPeriod": dlq * DAY}}}}
    assert longest_late_delivery(template, "F") == expected_days * DAY
