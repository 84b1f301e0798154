"""docs/api/orders-openapi.yaml, the pydantic models and template.yaml describe the same API and wiring."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from order_intake.models import Address, Customer, Order, OrderLine

ROOT = Path(__file__).resolve().parents[3]
SPEC = yaml.safe_load((ROOT / "docs" / "api" / "orders-openapi.yaml").read_text())


@pytest.fixture(scope="module")
def template():
    from tests.template.conftest import load_template

    return load_template((ROOT / "template.yaml").read_text())


@pytest.mark.parametrize("model", [Order, OrderLine, Customer, Address])
def test_the_spec_and_the_models_have_the_same_fields(model):
    schema = SPEC["components"]["schemas"][model.__name__]
    assert set(schema["properties"]) == set(model.model_fields)
    required = {name for name, f in model.model_fields.items() if f.is_required()}
    assert set(schema.get("required", [])) == required
    assert schema["additionalProperties"] is False  # the models forbid unknown fields too


def test_the_template_routes_are_the_spec_paths(template):
    events = template["Resources"]["OrderIntakeApiFunction"]["Properties"]["Events"]
    routes = {(e["Properties"]["Path"], e["Properties"]["Method"]) for e in events.values()}
    assert routes == {(path, method) for path, item in SPEC["paths"].items() for method in item}


def test_the_api_is_protected_by_a_key_and_a_throttled_usage_plan(template):
    api = template["Resources"]["OrdersApi"]["Properties"]
    assert api["Auth"]["ApiKeyRequired"] is True
    plan = api["Auth"]["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert plan["Throttle"]["RateLimit"] > 0
    assert all(s["ThrottlingRateLimit"] > 0 for s in api["MethodSettings"])


def test_the_worker_protects_the_org_and_reports_partial_failures(template):
    resources = template["Resources"]
    [source] = resources["OrderIntakeWorkerFunction"]["Properties"]["Events"].values()
    assert source["Type"] == "SQS"
    assert source["Properties"]["ScalingConfig"]["MaximumConcurrency"] <= 5
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    timeout = resources["OrderIntakeWorkerFunction"]["Properties"]["Timeout"]
    queue = resources["OrderQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["OrderDeadLetterQueue", "Arn"]}
    alarmed = {a["Properties"]["Dimensions"][0]["Value"].get("Fn::GetAtt", [None])[0]
               for a in resources.values() if a["Type"] == "AWS::CloudWatch::Alarm"
               and isinstance(a["Properties"]["Dimensions"][0]["Value"], dict)}
    assert "OrderDeadLetterQueue" in alarmed


def test_the_functions_get_what_their_code_reads(template):
    resources = template["Resources"]
    api_env = resources["OrderIntakeApiFunction"]["Properties"]["Environment"]["Variables"]
    assert api_env["ORDER_SIGNING_SECRET_ARN"] == {"Ref": "OrderSigningSecret"}
    assert api_env["ORDER_QUEUE_URL"] == {"Ref": "OrderQueue"}
    worker_env = resources["OrderIntakeWorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert worker_env["ORDER_DLQ_URL"] == {"Ref": "OrderDeadLetterQueue"}
    for name in ("OrderIntakeApiFunction", "OrderIntakeWorkerFunction"):
        handler = resources[name]["Properties"]["Handler"]
        module, function = handler.rsplit(".", 1)
        assert (ROOT / "functions" / "order_intake" / (module.replace(".", "/") + ".py")).is_file()
        assert function == "handler"
