"""Least-privilege rules for the IAM policies of a SAM application, read from the CloudFormation SAM deploys.

The input is the output of sam_translate.py: SAM policy templates, event sources and EventInvokeConfig
destinations already expanded into the statements and managed policies each function's role really gets.
`problems()` returns one line per violation; tests/security/test_least_privilege.py asserts there are none
in template.yaml and that each rule catches its violation in fixtures/overprivileged.yaml.

A resource is named by the logical id of a template resource or parameter ("ContractsQueue",
"SalesforceSecretArn"), whatever intrinsic (Ref, GetAtt, Sub) the policy reaches it through.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Actions that have no resource-level permissions, so "*" is the only Resource IAM accepts for them.
WILDCARD_RESOURCE_ACTIONS = {
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions (Tracing: Active)",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions",
    "xray:GetSamplingRules": "X-Ray has no resource-level permissions",
    "xray:GetSamplingTargets": "X-Ray has no resource-level permissions",
    "xray:GetSamplingStatisticSummaries": "X-Ray has no resource-level permissions",
}
# cloudwatch:PutMetricData has no resource either, but is accepted only under a cloudwatch:namespace condition.
NAMESPACED_ACTIONS = {"cloudwatch:PutMetricData": "cloudwatch:namespace"}

# AWS managed policies a function's role may carry, and why. SAM attaches all three itself.
ALLOWED_MANAGED_POLICIES = {
    "service-role/AWSLambdaBasicExecutionRole": (
        "added by SAM to every function: logs:CreateLogGroup/CreateLogStream/PutLogEvents. Its Resource is '*', "
        "a known gap: SAM cannot scope it to the function's LoggingConfig.LogGroup without a hand-written role"),
    "AWSXrayWriteOnlyAccess": "added by SAM for Tracing: Active; X-Ray has no resource-level permissions",
    "service-role/AWSLambdaSQSQueueExecutionRole": (
        "added by SAM to a function with an SQS event source (receive/delete/attributes for the event source "
        "mapping). Its Resource is '*', a known gap SAM offers no switch for; accepted only on a function that "
        "has an SQS event source mapping"),
}
NEVER_MANAGED_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")

# Resources written as literal ARNs rather than references, accepted for these actions only.
# (none today: the report bucket's SSE-KMS uses the AWS managed key aws/s3, whose key policy already lets
# S3 use it on behalf of any principal of the account allowed to write the bucket.)
LITERAL_RESOURCES: dict[str, tuple[set[str], str]] = {}

SALESFORCE_SECRET = "SalesforceSecretArn"
# A function talks to Salesforce through the layer's SalesforceAccess (get_access()) or simple-salesforce itself;
# importing only salesforce_access.observability (the shared Logger) does not count.
SALESFORCE_CLIENT = re.compile(r"\b(?:get_access|SalesforceAccess)\b|^\s*(?:from|import)\s+simple_salesforce\b",
                               re.MULTILINE)
SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")

# The S3 actions each boto3 S3 client call needs. A function's role may hold only the S3 actions of the calls its
# code makes: SAM's S3WritePolicy, for one, adds s3:PutObjectAcl and s3:PutLifecycleConfiguration to s3:PutObject.
S3_CALL_ACTIONS = {
    "put_object": {"s3:PutObject"}, "upload_file": {"s3:PutObject"}, "upload_fileobj": {"s3:PutObject"},
    "create_multipart_upload": {"s3:PutObject"}, "upload_part": {"s3:PutObject"},
    "complete_multipart_upload": {"s3:PutObject"}, "abort_multipart_upload": {"s3:AbortMultipartUpload"},
    "get_object": {"s3:GetObject"}, "head_object": {"s3:GetObject"}, "download_file": {"s3:GetObject"},
    "download_fileobj": {"s3:GetObject"}, "delete_object": {"s3:DeleteObject"}, "delete_objects": {"s3:DeleteObject"},
    "copy_object": {"s3:GetObject", "s3:PutObject"}, "list_objects": {"s3:ListBucket"},
    "list_objects_v2": {"s3:ListBucket"}, "head_bucket": {"s3:ListBucket"},
}
S3_CALL = re.compile(r"\.(?:(" + "|".join(S3_CALL_ACTIONS) + r")\(|get_paginator\(\s*[\"'](\w+)[\"'])")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def references(value: Any) -> set[str]:
    """Logical ids of resources and parameters an intrinsic-laden value refers to (pseudo parameters left out)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            found.add(value["Ref"])
        elif "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            found.add(target[0] if isinstance(target, list) else str(target).split(".", 1)[0])
        elif "Fn::Sub" in value:
            text, variables = (value["Fn::Sub"] + [{}])[:2] if isinstance(value["Fn::Sub"], list) else (
                value["Fn::Sub"], {})
            for name in SUB_VARIABLE.findall(text):
                if name not in variables:
                    found.add(name.split(".", 1)[0])
            found |= references(variables)
        else:
            for item in value.values():
                found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return {name for name in found if not name.startswith("AWS::")}


def sub_text(value: Any) -> str | None:
    """The literal text of a resource: a plain string, or a Fn::Sub template with no variables of its own."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return None


@dataclass
class Function:
    logical_id: str
    role_id: str | None
    environment: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)  # event source queues, destinations, DLQs, log group
    has_sqs_mapping: bool = False
    code_dir: Path | None = None

    @property
    def uses(self) -> set[str]:
        return self.environment | self.sources

    def talks_to_salesforce(self) -> bool | None:
        if self.code_dir is None or not self.code_dir.is_dir():
            return None
        return any(SALESFORCE_CLIENT.search(path.read_text()) for path in self.code_dir.rglob("*.py"))

    def s3_actions(self) -> set[str] | None:
        """The S3 actions the function's code needs, from the S3 client calls it makes (None: no code to read)."""
        if self.code_dir is None or not self.code_dir.is_dir():
            return None
        calls = {name for path in self.code_dir.rglob("*.py") for match in S3_CALL.finditer(path.read_text())
                 for name in match.groups() if name}
        return {action for call in calls for action in S3_CALL_ACTIONS.get(call, set())}


def functions(template: dict[str, Any], code_uri: dict[str, str], root: Path) -> dict[str, Function]:
    resources = template["Resources"]
    found: dict[str, Function] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        props = resource.get("Properties", {})
        role = props.get("Role")
        role_id = role["Fn::GetAtt"][0] if isinstance(role, dict) and "Fn::GetAtt" in role else None
        function = Function(logical_id, role_id, environment=references(props.get("Environment", {})))
        function.sources |= references([props.get("DeadLetterConfig", {}), props.get("LoggingConfig", {})])
        if logical_id in code_uri:
            function.code_dir = root / code_uri[logical_id]
        found[logical_id] = function
    for resource in resources.values():
        props = resource.get("Properties", {})
        targets = references(props.get("FunctionName")) & found.keys()
        for target in targets:
            if resource["Type"] == "AWS::Lambda::EventSourceMapping":
                found[target].sources |= references(props.get("EventSourceArn"))
                arn = props.get("EventSourceArn")
                queue = references(arn)
                found[target].has_sqs_mapping |= any(
                    resources.get(name, {}).get("Type") == "AWS::SQS::Queue" for name in queue)
            elif resource["Type"] == "AWS::Lambda::EventInvokeConfig":
                found[target].sources |= references(props.get("DestinationConfig", {}))
    return found


def statements(role: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for policy in role.get("Properties", {}).get("Policies", []) or []:
        for statement in as_list(policy.get("PolicyDocument", {}).get("Statement", [])):
            yield policy.get("PolicyName", "?"), statement


def statement_problems(where: str, statement: dict[str, Any]) -> list[str]:
    """Rules for any identity policy statement: no wildcard actions, no Not*, no '*' resource unless required."""
    if statement.get("Effect") != "Allow":
        return []
    problems = []
    for key in ("NotAction", "NotResource", "NotPrincipal"):
        if key in statement:
            problems.append(f"{where}: uses {key}, which grants everything it does not name")
    actions = [str(a) for a in as_list(statement.get("Action", []))]
    for action in actions:
        service = action.split(":", 1)[0]
        if action == "*" or action.endswith(":*") or service == "iam":
            problems.append(f"{where}: grants {action}")
    for resource in as_list(statement.get("Resource", [])):
        text = sub_text(resource)
        if text is None or "*" not in text or references(resource):
            continue
        for action in actions:
            condition_key = NAMESPACED_ACTIONS.get(action)
            if action in WILDCARD_RESOURCE_ACTIONS:
                continue
            if condition_key and condition_key in str(statement.get("Condition", {})):
                continue
            problems.append(f"{where}: grants {action} on {text!r}, any resource")
    return problems


def role_problems(role_id: str, role: dict[str, Any], *, has_sqs_mapping: bool = False) -> list[str]:
    problems = []
    for arn in role.get("Properties", {}).get("ManagedPolicyArns", []) or []:
        name = str(arn).split(":policy/", 1)[-1] if isinstance(arn, str) else repr(arn)
        if name in NEVER_MANAGED_POLICIES or name.endswith(NEVER_MANAGED_POLICIES):
            problems.append(f"{role_id}: has the managed policy {name}")
        elif name not in ALLOWED_MANAGED_POLICIES:
            problems.append(f"{role_id}: has the managed policy {name}, not among the accepted ones")
        elif name == "service-role/AWSLambdaSQSQueueExecutionRole" and not has_sqs_mapping:
            problems.append(f"{role_id}: has {name} without an SQS event source")
    for policy_name, statement in statements(role):
        problems += statement_problems(f"{role_id}/{policy_name}", statement)
    for statement in as_list(role.get("Properties", {}).get("AssumeRolePolicyDocument", {}).get("Statement", [])):
        principal = statement.get("Principal", {})
        if principal == "*" or not isinstance(principal, dict) or set(principal) != {"Service"}:
            problems.append(f"{role_id}: may be assumed by {principal!r}, not only by an AWS service")
    return problems


def reach_problems(function: Function, role: dict[str, Any], parameters: set[str],
                   resources: dict[str, Any]) -> list[str]:
    """Each resource a function's role reaches must be one the function uses."""
    problems = []
    for policy_name, statement in statements(role):
        if statement.get("Effect") != "Allow":
            continue
        where = f"{function.logical_id} ({policy_name})"
        actions = {str(a) for a in as_list(statement.get("Action", []))}
        for resource in as_list(statement.get("Resource", [])):
            named = references(resource)
            text = sub_text(resource)
            if not named:
                if text is not None and "*" in text:
                    continue  # judged by statement_problems
                allowed = LITERAL_RESOURCES.get(text or "")
                if allowed is None or not actions <= allowed[0]:
                    problems.append(f"{where}: {sorted(actions)} on {resource!r}, a resource not taken from the "
                                    "template or its parameters")
                continue
            for name in sorted(named):
                if name not in resources and name not in parameters:
                    problems.append(f"{where}: reaches {name}, which the template does not define")
                elif name not in function.uses:
                    problems.append(f"{where}: {sorted(actions)} on {name}, which the function neither names in "
                                    "its environment nor has as an event source or destination")
    needed = function.s3_actions()
    if needed is not None:
        for policy_name, statement in statements(role):
            granted = {str(a) for a in as_list(statement.get("Action", []))
                       if str(a).startswith("s3:")} if statement.get("Effect") == "Allow" else set()
            for action in sorted(granted - needed):
                problems.append(f"{function.logical_id} ({policy_name}): grants {action}, which its code never "
                                f"needs (its S3 calls need {sorted(needed) or 'nothing'})")
    if SALESFORCE_SECRET in parameters and function.talks_to_salesforce() is False:
        reached = {name for _, s in statements(role) if s.get("Effect") == "Allow"
                   for name in references(s.get("Resource"))}
        if SALESFORCE_SECRET in reached:
            problems.append(f"{function.logical_id}: may read {SALESFORCE_SECRET} but its code never uses a "
                            "Salesforce client (get_access, SalesforceAccess or simple_salesforce)")
    return problems


def resource_policy_problems(template: dict[str, Any]) -> list[str]:
    """Queue policies and Lambda permissions: an AWS service principal, conditioned on the source."""
    problems = []
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::SQS::QueuePolicy":
            for statement in as_list(props.get("PolicyDocument", {}).get("Statement", [])):
                principal = statement.get("Principal")
                if not isinstance(principal, dict) or set(principal) != {"Service"}:
                    problems.append(f"{logical_id}: grants {principal!r}, not an AWS service")
                if not any(key in str(statement.get("Condition", {}))
                           for key in ("aws:SourceArn", "aws:SourceAccount")):
                    problems.append(f"{logical_id}: has no aws:SourceArn or aws:SourceAccount condition")
        elif resource["Type"] == "AWS::Lambda::Permission":
            principal = props.get("Principal")
            if not isinstance(principal, str) or not principal.endswith(".amazonaws.com"):
                problems.append(f"{logical_id}: lets {principal!r} invoke a function, not an AWS service")
            elif "SourceArn" not in props and "SourceAccount" not in props:
                problems.append(f"{logical_id}: lets {principal} invoke a function from any source")
    return problems


def problems(translated: dict[str, Any], root: Path) -> list[str]:
    template = translated["template"]
    resources = template["Resources"]
    parameters = set(template.get("Parameters", {}))
    found = functions(template, translated.get("code_uri", {}), root)
    result = []
    for function in found.values():
        role = resources.get(function.role_id or "")
        if role is None or role.get("Type") != "AWS::IAM::Role":
            result.append(f"{function.logical_id}: its role is not defined in the template, so it cannot be checked")
            continue
        result += reach_problems(function, role, parameters, resources)
    role_functions = {f.role_id: f for f in found.values()}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role":
            function = role_functions.get(logical_id)
            result += role_problems(logical_id, resource, has_sqs_mapping=bool(function and function.has_sqs_mapping))
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for statement in as_list(resource.get("Properties", {}).get("PolicyDocument", {}).get("Statement", [])):
                result += statement_problems(logical_id, statement)
    return result + resource_policy_problems(template)
