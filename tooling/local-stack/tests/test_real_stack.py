"""`local up` and `local invoke` on the real template.yaml: every sample event in events/, every route with
its auth, an SQS delivery, an EventBridge event routed by moto, and every schedule fired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from samtranslator.yaml_helper import yaml_parse

from local.stack import LocalStack
from local.stack.runtime import collecting_sink

from .conftest import ROOT

EVENTS = ROOT / "events"
INDEX = json.loads((EVENTS / "index.json").read_text())
EVENT_FILES = sorted(p.name for p in EVENTS.glob("*.json") if p.name != "index.json")


@pytest.fixture(scope="module")
def stack():
    lines: list = []
    with LocalStack(log_sink=collecting_sink(lines), retry_delays=(0.2,)) as s:
        s.lines = lines
        yield s


def test_every_event_file_is_in_the_index():
    missing = [name for name in EVENT_FILES if name not in INDEX]
    assert missing == [], f"add {missing} to events/index.json (docs/local-stack.md says how)"
    stale = [name for name in INDEX if not name.startswith("_") and name not in EVENT_FILES]
    assert stale == []


def _check(expect: dict, payload: object, label: str) -> None:
    if "statusCode" in expect:
        assert isinstance(payload, dict), label
        assert payload["statusCode"] == expect["statusCode"], f"{label}: {payload}"
    elif isinstance(payload, dict) and "statusCode" in payload:
        assert payload["statusCode"] < 500, f"{label}: {payload}"
    if "batchItemFailures" in expect:
        assert isinstance(payload, dict), label
        assert len(payload["batchItemFailures"]) == expect["batchItemFailures"], f"{label}: {payload}"


@pytest.mark.parametrize("name", EVENT_FILES)
def test_every_sample_event_runs_against_its_entry_point(stack, name):
    spec = INDEX.get(name)
    assert spec, f"{name} is not in events/index.json"
    event = json.loads((EVENTS / name).read_text())
    expect = spec.get("expect", {})
    if "function" in spec:
        result = stack.invoke(spec["function"], event, handler=spec.get("handler"))
        if "error" in expect:
            assert result.error is not None, f"{name}: expected {expect['error']}, got {result.payload}"
            assert result.error["errorType"] == expect["error"]
            return
        assert result.ok, f"{name}: {result.error}"
        _check(expect, result.payload, name)
    elif "request" in spec:
        method, path = spec["request"].split(" ", 1)
        url = f"{stack.api_url}{path}"
        body = json.dumps(event)
        headers = {"Content-Type": "application/json", "x-api-key": stack.api_key}
        headers.update(stack.iam_headers(method, url, body, {"Content-Type": "application/json"}))
        response = requests.request(method, url, data=body, headers=headers, timeout=30)
        assert response.status_code == expect["statusCode"], response.text
    elif "put_events" in spec:
        bus = stack.model.evaluate({"Ref": spec["put_events"]})
        before = len([d for d in stack.history if d.function == expect["invokes"]])
        stack.put_events([{"EventBusName": bus, "Source": event["source"], "DetailType": event["detail-type"],
                           "Detail": event["detail"]}])
        assert stack.wait_idle(30)
        after = [d for d in stack.history if d.function == expect["invokes"]]
        assert len(after) > before, f"{name} never reached {expect['invokes']}"
    else:
        pytest.fail(f"{name}: the index entry names no function, request or put_events")


def test_the_outbound_message_sample_is_from_the_local_org_and_another_org_is_refused(stack):
    from salesforce_emulator.ids import ORG_ID

    sample = json.loads((EVENTS / "contract-signed-outbound-message.json").read_text())
    assert f"<OrganizationId>{ORG_ID}</OrganizationId>" in sample["body"]

    accepted = stack.invoke("OutboundMessageFunction", sample)
    foreign = dict(sample, body=sample["body"].replace(ORG_ID, "00D5e000000KQ2eEAG"))
    refused = stack.invoke("OutboundMessageFunction", foreign)

    assert accepted.payload["statusCode"] == 200
    assert "<Ack>true</Ack>" in accepted.payload["body"]  # Salesforce stops resending only on this
    assert refused.payload["statusCode"] == 403  # a message from another org is never queued
    assert "<Ack>true</Ack>" not in refused.payload["body"]


def test_every_route_of_the_template_is_served_with_its_auth(stack):
    gateway = stack.gateway
    declared = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"])
                for res in yaml_parse((ROOT / "template.yaml").read_text())["Resources"].values()
                if res["Type"] == "AWS::Serverless::Function"
                for e in (res["Properties"].get("Events") or {}).values() if e["Type"] == "Api"}
    assert {(r.method, r.path) for r in gateway.routes} >= declared
    for route in gateway.routes:
        path = route.path.replace("{sku}", "SKU-1001").replace("{proxy+}", "x")
        url = f"{stack.api_url}{path}"
        bare = requests.request(route.method, url, data=b"{}", timeout=30)
        if route.iam or route.api_key:
            assert bare.status_code == 403, f"{route.describe()} answered {bare.status_code} without credentials"
        headers = {"Content-Type": "application/json"}
        if route.api_key:
            headers["x-api-key"] = stack.api_key
        if route.iam:
            headers.update(stack.iam_headers(route.method, url, b"{}", headers))
        authorised = requests.request(route.method, url, data=b"{}", headers=headers, timeout=30)
        assert authorised.status_code not in (403, 500, 502, 504), f"{route.describe()}: {authorised.text}"


def test_an_unknown_path_answers_like_api_gateway(stack):
    response = requests.get(f"{stack.api_url}/no/such/route", timeout=10)
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}


def test_an_sqs_delivery_is_processed_by_the_consumer(stack):
    consumers = [(fn, m) for fn in stack.model.functions.values() for m in fn.sqs_events]
    assert consumers
    fn, mapping = next((fn, m) for fn, m in consumers if fn.logical_id == "BillingConsumerFunction")
    billing = stack.services.stand_ins["billing"].server
    app = stack.services.emulator.app
    account_id = app.records.create("Account", {"Name": "Local Stack Test"}, app.integration_user_id)
    contract_id = app.records.create("Contract", {"AccountId": account_id, "StartDate": "2025-03-01",
                                                  "ContractTerm": 12}, app.integration_user_id)
    contract = {"contract_id": contract_id, "account_id": account_id, "signed_at": "2025-03-01T09:30:00Z"}
    stack.client("sqs").send_message(QueueUrl=stack.queue_url(mapping.queue), MessageBody=json.dumps(contract))
    assert stack.wait_idle(30)
    (account,) = billing.accounts(contract_id=contract_id)
    assert app.store.get(contract_id)["Billing_Account_Number__c"] == account["account_number"]
    assert any(d.function == fn.logical_id and d.ok for d in stack.history)


def test_an_eventbridge_event_reaches_its_function(stack):
    targets = {e.bus: fn for fn in stack.model.functions.values() for e in fn.rule_events}
    assert targets, "the template routes no EventBridge rule to a function"
    event = json.loads((EVENTS / "shipment-status-changed.json").read_text())
    fn = targets[stack.model.evaluate({"Ref": "LogisticsEventBus"})]
    before = len([d for d in stack.history if d.function == fn.logical_id])
    stack.put_events([{"EventBusName": stack.model.evaluate({"Ref": "LogisticsEventBus"}), "Source": event["source"],
                       "DetailType": event["detail-type"], "Detail": event["detail"]}])
    assert stack.wait_idle(30)
    runs = [d for d in stack.history if d.function == fn.logical_id][before:]
    assert runs
    assert runs[0].ok


def test_every_schedule_can_be_fired(stack):
    schedules = stack.schedules()
    assert schedules, "the template declares no schedule"
    for name in schedules:
        result = stack.fire_schedule(name)
        assert result is not None
        assert result.ok, f"{name}: {result.error}"


def test_no_secret_reaches_the_terminal(stack):
    text = "\n".join(line for _, line in stack.lines)
    secret = json.loads(stack.services.salesforce_secret())
    key_body = secret["private_key"].splitlines()[1]
    assert key_body not in text
    for stand_in in stack.services.stand_ins.values():
        for name in ("api_key", "signing_key"):
            if name in stand_in.values:
                assert stand_in.values[name] not in text


def test_the_summary_names_no_problem(stack):
    assert stack.problems == []


def test_sample_event_files_are_valid_json():
    for name in EVENT_FILES:
        json.loads(Path(EVENTS / name).read_text())
