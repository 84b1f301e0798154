"""The template reader: the real template.yaml, and a fixture template with every construct the stack wires,
both read through SAM's translation."""

from __future__ import annotations

from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from local.stack.apigw import ApiGateway, api_path_regex
from local.stack.cfn import Evaluator, Unsupported
from local.stack.project import ProjectNotFound, find_template
from local.stack.services import load_wiring
from local.stack.template import IMPLICIT_API, StackModel, TemplateInvalid, read_template

from .conftest import FIXTURE_TEMPLATE, ROOT

TEMPLATE = ROOT / "template.yaml"


def _raw_functions() -> dict[str, dict]:
    doc = yaml_parse(TEMPLATE.read_text())
    return {k: v for k, v in doc["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def _routes(model: StackModel) -> set[tuple[str, str, str, str | None]]:
    gateway = ApiGateway(model, invoke=lambda *_: None, sqs_client=lambda: None)
    assert gateway.problems == []
    return {(r.method, r.path, r.api.logical_id, r.function) for r in gateway.routes}


def _local_parameters(model_parameters: dict) -> dict[str, str]:
    """wiring.toml's parameters with every placeholder replaced by a plausible value."""
    values = {}
    for name, value in load_wiring()["parameters"].items():
        values[name] = value.replace("{", "x-").replace("}", "")
    return {k: v for k, v in values.items() if k in model_parameters}


@pytest.fixture(scope="module")
def real():
    declared = read_template(TEMPLATE).parameters
    return read_template(TEMPLATE, _local_parameters(declared))


# -- the real template -------------------------------------------------------------------------------------------


def test_every_function_of_the_real_template_is_found_with_its_code_and_handler(real):
    raw = _raw_functions()
    assert raw, "template.yaml declares no function"
    assert set(real.functions) == set(raw)
    for fn in real.functions.values():
        module, _, attribute = fn.handler.rpartition(".")
        source = fn.code_uri / (module.replace(".", "/") + ".py")
        assert source.is_file(), f"{fn.logical_id}: handler module {source} is missing"
        assert f"def {attribute}(" in source.read_text(), f"{fn.logical_id}: no {attribute}() in {source}"
        assert [p.name for p in fn.layers] == ["salesforce_access"]  # the layer, from Globals
        assert fn.timeout >= 1


def test_the_real_template_has_nothing_the_local_stack_cannot_wire(real):
    assert real.problems == []
    assert real.missing_parameters() == [], "a parameter without default needs a value in local/stack/wiring.toml"


def test_environment_of_every_real_function_is_resolved(real):
    for logical_id, raw in _raw_functions().items():
        env = real.environment(logical_id)
        declared = set((raw["Properties"].get("Environment") or {}).get("Variables", {}))
        assert declared <= set(env), logical_id
        # Globals first, the function's own values win.
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "SalesforceIntegration"
        assert env["POWERTOOLS_SERVICE_NAME"] != "salesforce-integration", f"{logical_id} keeps the global name"
        assert env["STATE_TABLE_NAME"] == "salesforce-integration-StateTable"
        for name, value in env.items():
            assert value != "", f"{logical_id}: {name} resolved to an empty string"
            assert "{" not in value or name.endswith("_JSON"), f"{logical_id}: {name} = {value!r}"


def test_every_event_of_the_real_template_is_wired(real):
    routes = {(method, path, function) for method, path, _, function in _routes(real)}
    for logical_id, raw in _raw_functions().items():
        fn = real.functions[logical_id]
        sources = {s.name for s in fn.sqs_events} | {e.rule for e in fn.rule_events} | {s.name for s in fn.schedules}
        for name, event in (raw["Properties"].get("Events") or {}).items():
            if event["Type"] == "Api":
                route = (event["Properties"]["Method"].upper(), event["Properties"]["Path"], logical_id)
                assert route in routes, f"{logical_id}.{name}: no route {route}"
            else:  # SAM names what it generates for an event <Function><Event>
                assert f"{logical_id}{name}" in sources, f"{logical_id}.{name} ({event['Type']}) is not wired"


# -- the fixture template ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture():
    return read_template(FIXTURE_TEMPLATE)


def test_intrinsics_globals_and_conditions(fixture):
    env = fixture.environment("ProbeFunction")
    assert env["GREETING"] == "hello from salesforce-integration in eu-west-1"
    assert env["GLOBAL_VAR"] == "from-globals"
    assert env["OVERRIDDEN"] == "by-function"
    assert env["TABLE_NAME"] == "salesforce-integration-Table"
    assert env["QUEUE_URL"].endswith("/123456789012/salesforce-integration-WorkQueue")
    assert env["QUEUE_ARN"] == "arn:aws:sqs:eu-west-1:123456789012:salesforce-integration-WorkQueue"
    assert env["BUS_NAME"] == "salesforce-integration-orders"
    assert env["IF_VALUE"] == "dev-value"
    assert env["JOINED"] == "a-y"
    assert "DROPPED" not in env  # AWS::NoValue
    assert env["NEEDED_LATER"] == ""
    fn = fixture.functions["ProbeFunction"]
    assert fn.memory == 256  # FindInMap in Globals
    assert fn.timeout == 2  # the function's own Timeout wins over Globals'
    assert [p.name for p in fn.layers] == ["probe_layer"]
    assert "OnlyInProd" not in fixture.resources  # its condition is false


def test_a_condition_follows_the_local_parameter_values():
    model = read_template(FIXTURE_TEMPLATE, {"Stage": "prod"})
    assert "OnlyInProd" in model.resources
    assert model.environment("ProbeFunction")["IF_VALUE"] == "other-value"


def test_events_of_every_kind(fixture):
    fn = fixture.functions["ProbeFunction"]
    routes = {(method, path, api) for method, path, api, function in _routes(fixture) if function == fn.logical_id}
    assert routes == {("GET", "/open/{id}", "ProbeApi"), ("GET", "/open/x/crash", "ProbeApi"),
                      ("POST", "/signed", "ProbeApi"), ("GET", "/keyed", "ProbeApi"),
                      ("ANY", "/files/{proxy+}", IMPLICIT_API)}
    assert (fixture.apis[IMPLICIT_API].stage, fixture.apis["ProbeApi"].stage) == ("Prod", "v1")
    (sqs,) = fn.sqs_events
    assert (sqs.queue, sqs.batch_size, sqs.report_batch_item_failures) == ("WorkQueue", 5, True)
    (rule,) = fn.rule_events
    assert (rule.rule, rule.bus) == ("ProbeFunctionOrders", "salesforce-integration-orders")
    assert rule.pattern["detail-type"] == ["OrderPlaced"]
    schedules = {s.name: s for s in fn.schedules}
    assert set(schedules) == {"ProbeFunctionHourly", "NightlySchedule"}
    assert schedules["NightlySchedule"].kind == "scheduler"
    assert schedules["NightlySchedule"].input == '{"action": "nightly"}'
    assert schedules["ProbeFunctionHourly"].expression == "rate(1 hour)"
    assert fn.maximum_retry_attempts == 1
    assert fn.on_failure_kind == "destination"
    assert fixture.rule_targets == [("AuditRule", "audit", "RuleQueue")]


def test_unsupported_constructs_are_reported_by_name(fixture):
    problems = "\n".join(fixture.problems)
    assert "Machine: resource type AWS::StepFunctions::StateMachine is not emulated" in problems
    assert "ProbeFunctionUploadsPermission: invocations of ProbeFunction by s3.amazonaws.com are not emulated" \
        in problems
    assert fixture.missing_parameters() == ["NeededLater"]


def test_a_template_sam_refuses_is_reported_with_sams_reasons(tmp_path):
    bad = tmp_path / "template.yaml"
    bad.write_text(FIXTURE_TEMPLATE.read_text().replace("Type: EventBridgeRule", "Type: NoSuchEvent"))
    with pytest.raises(TemplateInvalid, match=r"ProbeFunction.*NoSuchEvent"):
        read_template(bad)


def test_the_project_is_found_from_the_current_directory_upwards(tmp_path, monkeypatch):
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    (tmp_path / "functions" / "x").mkdir(parents=True)
    assert find_template(start=tmp_path / "functions" / "x") == tmp_path / "template.yaml"
    monkeypatch.chdir(tmp_path / "functions")
    assert find_template() == tmp_path / "template.yaml"
    assert find_template(FIXTURE_TEMPLATE) == FIXTURE_TEMPLATE
    with pytest.raises(ProjectNotFound, match="give --template"):
        find_template(start=Path("/"))


def test_a_function_is_found_by_logical_id_name_or_folder(fixture):
    assert fixture.function("ProbeFunction").logical_id == "ProbeFunction"
    assert fixture.function("salesforce-integration-SlowFunction").logical_id == "SlowFunction"
    assert fixture.function("broken").logical_id == "BrokenFunction"
    with pytest.raises(KeyError, match=r"no function 'Nope'.*BrokenFunction, ProbeFunction, SlowFunction"):
        fixture.function("Nope")


# -- intrinsic functions -------------------------------------------------------------------------------------------


def _evaluator(**parameters: str) -> Evaluator:
    resources = {"Queue": "queue-url"}

    def ref(name: str) -> str:
        return resources[name]

    def getatt(name: str, attribute: str) -> str:
        if name == "Queue" and attribute == "Arn":
            return "queue-arn"
        raise KeyError(attribute)

    return Evaluator(parameters=dict(parameters), conditions={"On": {"Fn::Equals": [{"Ref": "Mode"}, "on"]}},
                     mappings={"M": {"a": {"b": "found"}}}, ref=ref, getatt=getatt)


def test_sub_with_variables_attributes_and_escapes():
    ev = _evaluator(Mode="on")
    assert ev.evaluate({"Fn::Sub": ["${Name}/${Queue.Arn}/${Queue}/${!Literal}", {"Name": "n"}]}) == \
        "n/queue-arn/queue-url/${Literal}"
    assert ev.evaluate({"Fn::If": ["On", "yes", "no"]}) == "yes"
    assert ev.evaluate({"Fn::FindInMap": ["M", "a", "b"]}) == "found"
    assert ev.evaluate({"Fn::ToJsonString": {"a": {"Ref": "Mode"}}}) == '{"a":"on"}'


def test_unknown_references_raise_a_clear_error():
    ev = _evaluator(Mode="off")
    with pytest.raises(Unsupported, match="!Ref Nothing names no parameter or resource"):
        ev.evaluate({"Ref": "Nothing"}, "X.Y")
    with pytest.raises(Unsupported, match=r"!GetAtt Queue\.Url has no local value"):
        ev.evaluate({"Fn::GetAtt": ["Queue", "Url"]})
    with pytest.raises(Unsupported, match="Fn::ImportValue is not supported"):
        ev.evaluate({"Fn::ImportValue": "shared-thing"})


@pytest.mark.parametrize(("template", "path", "params"), [
    ("/products/{sku}/availability", "/products/SKU-1/availability", {"p_sku": "SKU-1"}),
    ("/files/{proxy+}", "/files/a/b/c.txt", {"p_proxy": "a/b/c.txt"}),
    ("/", "/", {}),
])
def test_api_paths_match_like_api_gateway(template, path, params):
    m = api_path_regex(template).match(path)
    assert m is not None
    assert m.groupdict() == params


def test_api_path_parameters_do_not_cross_segments():
    assert api_path_regex("/products/{sku}/availability").match("/products/a/b/availability") is None
