"""template.yaml, samconfig.toml and the linter settings hold the project's deployment rules.

`make sam-check` runs cfn-lint and a real `sam build`; these tests check what neither does and what a
deployment would only show by failing: the template against the code it deploys (handlers, the layer's
packages, the layer's pins), against the libraries it configures (Powertools idempotency) and against
itself (one runtime for functions and layer, parameters' patterns and allowed values, alarms wired,
samconfig's overrides). A test that only repeated a value of the YAML was dropped: it could not fail for a
reason other than the YAML changing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from tests.template import sam_build_check

ROOT = Path(__file__).resolve().parents[2]
# CloudWatch Logs accepts only these retention periods.
RETENTION_DAYS = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                  2922, 3288, 3653}  # fmt: skip


def resources_of(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == type_}


# --- template: globals -------------------------------------------------------------------------------------


def runtime_of(template: dict[str, Any]) -> str:
    return template["Globals"]["Function"]["Runtime"]


def test_cfn_loader_reads_short_tags(load_cfn):
    doc = load_cfn("a: !Ref X\nb: !GetAtt T.Arn\nc: !If [C, 1, 2]\nd: !Sub '${X}-y'\n")
    assert doc == {"a": {"Ref": "X"}, "b": {"Fn::GetAtt": ["T", "Arn"]}, "c": {"Fn::If": ["C", 1, 2]},
                   "d": {"Fn::Sub": "${X}-y"}}  # fmt: skip


def handler_problems(template: dict[str, Any]) -> list[str]:
    """Each function's Handler names a module under its CodeUri that defines that callable at top level."""
    problems = []
    for name, function in resources_of(template, "AWS::Serverless::Function").items():
        properties = function["Properties"]
        module, _, attribute = properties["Handler"].rpartition(".")
        path = ROOT / properties["CodeUri"] / Path(*module.split("."))
        source = path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"
        if not source.is_file():
            problems.append(f"{name}: no module {module} under {properties['CodeUri']}")
            continue
        tree = ast.parse(source.read_text())
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
        defined |= {target.id for node in tree.body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)}
        if attribute not in defined:
            problems.append(f"{name}: {module} defines no {attribute}")
    return problems


def test_every_handler_exists_in_the_code_it_deploys(template):
    assert resources_of(template, "AWS::Serverless::Function")
    assert handler_problems(template) == []


def test_handler_check_catches_a_wrong_handler(template):
    broken = {**template, "Resources": {"F": {"Type": "AWS::Serverless::Function", "Properties": {
        "CodeUri": "functions/availability", "Handler": "availability.handler.no_such_handler"}}}}
    assert handler_problems(broken) == ["F: availability.handler defines no no_such_handler"]


def layer_packages(template: dict[str, Any]) -> set[str]:
    """The top-level modules the shared layer puts on the path (its ContentUri's packages and modules)."""
    content = ROOT / template["Resources"]["SalesforceAccessLayer"]["Properties"]["ContentUri"]
    return {p.name for p in content.iterdir() if (p / "__init__.py").is_file()} | {
        p.stem for p in content.glob("*.py")}


def test_every_function_that_imports_the_layer_gets_it(template):
    packages = layer_packages(template)
    assert {"salesforce_access", "edge_kit"} <= packages
    imports = re.compile(rf"^\s*(?:from|import)\s+({'|'.join(sorted(packages))})\b", re.MULTILINE)
    global_layers = template["Globals"]["Function"].get("Layers", [])
    missing = []
    for name, function in resources_of(template, "AWS::Serverless::Function").items():
        properties = function["Properties"]
        layers = properties.get("Layers", global_layers)
        users = [path for path in (ROOT / properties["CodeUri"]).rglob("*.py") if imports.search(path.read_text())]
        if users and {"Ref": "SalesforceAccessLayer"} not in layers:
            missing.append(name)
    assert missing == []


def test_no_secret_travels_in_an_environment_variable(template):
    """Lambda environment variables are not encrypted with a key of ours: secrets come from Secrets Manager."""
    functions = resources_of(template, "AWS::Serverless::Function").values()
    environments = [template["Globals"]["Function"]["Environment"]["Variables"]] + [
        f["Properties"].get("Environment", {}).get("Variables", {}) for f in functions]
    for variables in environments:
        for name, value in variables.items():
            assert not re.search(r"PASSWORD|CLIENT_SECRET|PRIVATE_KEY|TOKEN", name), name
            assert "BEGIN" not in str(value), name


# --- template: parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arn", "valid"),
    [
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:salesforce/dev-AbCdEf", True),
        ("arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:sf-AbCdEf", True),
        ("salesforce/dev", False),
        ("arn:aws:ssm:eu-west-1:123456789012:parameter/salesforce", False),
        ("arn:aws:secretsmanager:eu-west-1:1234:secret:salesforce-AbCdEf", False),
        ("", False),
    ],
)
def test_secret_arn_parameter_accepts_only_secret_arns(template, arn, valid):
    parameter = template["Parameters"]["SalesforceSecretArn"]
    assert "Default" not in parameter, "the secret is account-specific: no default"
    # CloudFormation matches AllowedPattern against the whole value.
    assert bool(re.fullmatch(parameter["AllowedPattern"], arn)) is valid


def test_log_parameters(template):
    level = template["Parameters"]["LogLevel"]
    assert level["Default"] in level["AllowedValues"]
    assert set(level["AllowedValues"]) <= {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    retention = template["Parameters"]["LogRetentionDays"]
    assert set(retention["AllowedValues"]) <= RETENTION_DAYS
    assert retention["Default"] in retention["AllowedValues"]


# --- template: resources -----------------------------------------------------------------------------------


def test_the_layer_is_built_for_the_runtime_and_architecture_the_functions_use(template):
    function = template["Globals"]["Function"]
    layer = template["Resources"]["SalesforceAccessLayer"]
    assert (ROOT / layer["Properties"]["ContentUri"]).is_dir()
    assert layer["Properties"]["CompatibleRuntimes"] == [function["Runtime"]]
    assert layer["Properties"]["CompatibleArchitectures"] == function["Architectures"]
    assert layer["Metadata"] == {"BuildMethod": function["Runtime"], "BuildArchitecture": function["Architectures"][0]}


def test_state_table_has_the_keys_powertools_idempotency_uses(template):
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    defaults = DynamoDBPersistenceLayer(table_name="t")
    properties = template["Resources"]["StateTable"]["Properties"]
    assert properties["KeySchema"] == [{"AttributeName": defaults.key_attr, "KeyType": "HASH"}]
    assert {"AttributeName": defaults.key_attr, "AttributeType": "S"} in properties["AttributeDefinitions"]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": defaults.expiry_attr, "Enabled": True}
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["IDEMPOTENCY_TABLE_NAME"] == {"Ref": "StateTable"}


def test_every_alarm_notifies_the_alarm_topic(template):
    """An alarm nobody hears is no alarm: each one notifies the stack's topic on ALARM and on OK."""
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    assert alarms, "the stack defines alarms"
    silent = [name for name, alarm in alarms.items()
              if alarm["Properties"].get("AlarmActions") != [{"Ref": "AlarmTopic"}]
              or alarm["Properties"].get("OKActions") != [{"Ref": "AlarmTopic"}]]
    assert silent == []
    assert template["Resources"]["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    subscription = template["Resources"]["AlarmEmailSubscription"]["Properties"]
    assert subscription["TopicArn"] == {"Ref": "AlarmTopic"}


def function_problems(template: dict[str, Any]) -> list[str]:
    """What is wrong with each AWS::Serverless::Function: each needs its own retained log group."""
    problems = []
    log_groups = resources_of(template, "AWS::Logs::LogGroup")
    used: dict[str, str] = {}
    for name, function in resources_of(template, "AWS::Serverless::Function").items():
        properties = function.get("Properties", {})
        pinned = template.get("Globals", {}).get("Function", {})
        for key in ("Runtime", "Architectures"):
            if key in properties and key in pinned and properties[key] != pinned[key]:
                problems.append(f"{name}: {key} overrides the pinned {pinned[key]}")
        reference = properties.get("LoggingConfig", {}).get("LogGroup")
        if not (isinstance(reference, dict) and reference.get("Ref") in log_groups):
            problems.append(f"{name}: LoggingConfig.LogGroup must be !Ref to an AWS::Logs::LogGroup")
            continue
        group = reference["Ref"]
        if group in used:
            problems.append(f"{name}: log group {group} is already used by {used[group]}")
        used[group] = name
        retention = log_groups[group].get("Properties", {}).get("RetentionInDays")
        if retention != {"Ref": "LogRetentionDays"}:
            problems.append(f"{name}: log group {group} must set RetentionInDays: !Ref LogRetentionDays")
    return problems


def test_every_function_has_its_own_retained_log_group(template):
    assert function_problems(template) == []


GOOD_FUNCTION = """
Globals:
  Function: {Runtime: python3.13, Architectures: [arm64]}
Resources:
  A:
    Type: AWS::Serverless::Function
    Properties:
      LoggingConfig: {LogGroup: !Ref ALogs}
  ALogs:
    Type: AWS::Logs::LogGroup
    Properties: {RetentionInDays: !Ref LogRetentionDays}
"""


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda t: t, None),
        (lambda t: t.replace("      LoggingConfig: {LogGroup: !Ref ALogs}\n", "      Handler: h.h\n"),
         "A: LoggingConfig.LogGroup must be"),
        (lambda t: t.replace("!Ref ALogs", "/aws/lambda/a"), "A: LoggingConfig.LogGroup must be"),
        (lambda t: t.replace("{RetentionInDays: !Ref LogRetentionDays}", "{}"), "must set RetentionInDays"),
        (lambda t: t.replace("Properties:\n      Logging", "Properties:\n      Runtime: python3.9\n      Logging"),
         "A: Runtime overrides"),
        (lambda t: t + "  B:\n    Type: AWS::Serverless::Function\n    Properties:\n"
                       "      LoggingConfig: {LogGroup: !Ref ALogs}\n",
         "B: log group ALogs is already used by A"),
    ],
)  # fmt: skip
def test_function_check_catches_missing_log_groups(load_cfn, edit, problem):
    problems = function_problems(load_cfn(edit(GOOD_FUNCTION)))
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


# --- samconfig.toml ----------------------------------------------------------------------------------------


def overrides(deploy: dict[str, Any]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in deploy["parameter_overrides"].split())


def test_samconfig_environments_fit_the_template(samconfig, template):
    stacks = set()
    for env in ("default", "dev", "prod"):
        config = samconfig[env]
        deploy = config["deploy"]["parameters"]
        stacks.add(deploy.get("stack_name") or config["global"]["parameters"]["stack_name"])
        # SAM creates a role per function: without the capability the deployment is refused.
        assert "CAPABILITY_IAM" in deploy["capabilities"].split(), env
        values = overrides(deploy)
        assert values.keys() <= template["Parameters"].keys(), f"{env}: unknown parameter"
        for key, value in values.items():
            parameter = template["Parameters"][key]
            allowed = parameter.get("AllowedValues")
            if allowed:
                assert value in [str(v) for v in allowed], f"{env}: {key}={value}"
            if "AllowedPattern" in parameter:
                assert re.fullmatch(parameter["AllowedPattern"], value), f"{env}: {key}={value}"
        assert values["EnvironmentName"] == ("prod" if env == "prod" else "dev")
    assert len(stacks) == 3, "each environment deploys its own stack"


# --- pins, linters, build check ----------------------------------------------------------------------------


def pins(path: Path, section: str | None = None) -> dict[str, str]:
    """name -> version of `name==version` lines (only under the comment line `section`, if given)."""
    found: dict[str, str] = {}
    inside = section is None
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            if section is not None:
                inside = line.startswith(section)
            continue
        match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s*(#.*)?", line)
        if inside and match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
        elif inside and line.strip():
            raise AssertionError(f"{path.name}: not an exact pin: {line!r}")
    return found


def test_layer_requirements_match_dev_pins():
    layer = pins(ROOT / "layers" / "salesforce_access" / "requirements.txt")
    dev_runtime = pins(ROOT / "requirements" / "dev.in", section="# Runtime")
    assert layer, "the layer pins its dependencies"
    assert layer == dev_runtime


def reasonless_suppressions(text: str, key: str) -> list[str]:
    """Items of the YAML list `key` that have no trailing `# reason` comment."""
    block = re.search(rf"^{key}:[ \t]*(\[\])?\n((?:[ \t]+-.*\n|[ \t]*#.*\n)*)", text, re.MULTILINE)
    if block is None:
        return []
    items = [line for line in block.group(2).splitlines() if line.strip().startswith("-")]
    return [item for item in items if not re.search(r"#\s*\S{3,}", item)]


def test_every_lint_suppression_has_a_reason():
    assert reasonless_suppressions("skip-check:\n  - CKV_1  # why\n  - CKV_2\n", "skip-check") == ["  - CKV_2"]
    cfnlintrc = (ROOT / ".cfnlintrc").read_text()
    assert reasonless_suppressions(cfnlintrc, "ignore_checks") == []
    assert re.search(r"^include_checks:\n\s+- I\b", cfnlintrc, re.MULTILINE), "informational rules on"
    checkov = ROOT / ".checkov.yaml"
    if checkov.exists():
        assert reasonless_suppressions(checkov.read_text(), "skip-check") == []


def test_build_check_retargets_only_the_pinned_runtime(load_cfn):
    text = (ROOT / "template.yaml").read_text()
    pinned, retargeted = sam_build_check.retarget(text, "python3.11")
    assert pinned == runtime_of(load_cfn(text))
    assert pinned not in retargeted
    build = load_cfn(retargeted)
    assert build["Globals"]["Function"]["Runtime"] == "python3.11"
    layer = build["Resources"]["SalesforceAccessLayer"]
    assert layer["Metadata"]["BuildMethod"] == "python3.11"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.11"]
    # Nothing else changes, the architecture included.
    assert retargeted.replace("python3.11", pinned) == text
    assert sam_build_check.layer_dirs(text) == [("SalesforceAccessLayer", ROOT / "layers/salesforce_access")]


def test_build_check_finds_missing_layer_dependencies(tmp_path, monkeypatch):
    monkeypatch.setattr(sam_build_check, "BUILD_DIR", tmp_path / "build")
    source = tmp_path / "layer"
    source.mkdir()
    (source / "requirements.txt").write_text("# pins\nPyJWT==2.15.1\naws-lambda-powertools==3.37.0  # x\n")
    assert sam_build_check.check_layer("Layer", source) == [f"Layer: {tmp_path / 'build/Layer/python'} was not built"]
    built = tmp_path / "build" / "Layer" / "python"
    (built / "pyjwt-2.15.1.dist-info").mkdir(parents=True)
    assert sam_build_check.check_layer("Layer", source) == [
        "Layer: aws-lambda-powertools is pinned but not in the built layer"
    ]
    (built / "aws_lambda_powertools-3.37.0.dist-info").mkdir()
    assert sam_build_check.check_layer("Layer", source) == []


def test_make_test_runs_the_sam_checks():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:.*\bsam-check\b", makefile, re.MULTILINE)
    recipe = re.search(r"^sam-check:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE).group(1)
    assert "validate --lint" in recipe
    assert "sam_build_check.py" in recipe
    assert "SAM_CLI_TELEMETRY=0" in recipe
