"""Each function's role reaches only what that function uses, read from the IAM policies SAM would deploy.

The rules are in iam_policies.py; fixtures/overprivileged.yaml breaks each of them once, so the rules are shown
to catch what they claim to before template.yaml is judged by them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.security import iam_policies

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_every_role_in_the_template_is_least_privilege(translated: dict[str, Any]) -> None:
    problems = iam_policies.problems(translated, ROOT)
    assert problems == [], "least-privilege violations in template.yaml:\n" + "\n".join(problems)


def test_every_function_and_its_role_were_checked(translated: dict[str, Any]) -> None:
    """Guards the test above against judging nothing: every SAM function was found, with its role and code."""
    template = translated["template"]
    functions = iam_policies.functions(template, translated["code_uri"], ROOT)
    assert set(functions) == set(translated["code_uri"])
    assert len(functions) >= 7
    for function in functions.values():
        role = template["Resources"][function.role_id]
        assert role["Type"] == "AWS::IAM::Role"
        assert list(iam_policies.statements(role)), f"{function.logical_id}'s role has no inline statement"
        assert function.code_dir is not None
        assert function.code_dir.is_dir()
        assert function.talks_to_salesforce() is not None
    # the Salesforce rule is not vacuous: some functions use a Salesforce client and some do not
    talkers = {f.logical_id for f in functions.values() if f.talks_to_salesforce()}
    assert "AvailabilityFunction" not in talkers
    assert "BillingConsumerFunction" in talkers


def test_functions_that_never_talk_to_salesforce_cannot_read_its_secret(translated: dict[str, Any]) -> None:
    template = translated["template"]
    for function in iam_policies.functions(template, translated["code_uri"], ROOT).values():
        if function.talks_to_salesforce():
            continue
        role = template["Resources"][function.role_id]
        reached = {name for _, statement in iam_policies.statements(role)
                   for name in iam_policies.references(statement.get("Resource"))}
        assert "SalesforceSecretArn" not in reached, function.logical_id


def test_sqs_consumers_read_only_their_own_queue_through_inline_policies(translated: dict[str, Any]) -> None:
    """Beyond SAM's AWSLambdaSQSQueueExecutionRole (see ALLOWED_MANAGED_POLICIES), queue actions are per queue."""
    template = translated["template"]
    for function in iam_policies.functions(template, translated["code_uri"], ROOT).values():
        role = template["Resources"][function.role_id]
        for _, statement in iam_policies.statements(role):
            actions = [str(a) for a in iam_policies.as_list(statement.get("Action", []))]
            if any(a.startswith("sqs:") for a in actions):
                queues = iam_policies.references(statement.get("Resource"))
                assert queues, (function.logical_id, actions)
                assert queues <= function.uses, (function.logical_id, actions, queues)


@pytest.mark.parametrize("expected", [
    "SendsElsewhereFunction (SendsElsewhereFunctionRolePolicy0): ['sqs:SendMessage*'] on QueueB, which the "
    "function neither names",
    "UnnamedSecretFunction (UnnamedSecretFunctionRolePolicy0): ['secretsmanager:GetSecretValue'] on OtherSecretArn",
    "S3WriteTemplateFunction (S3WriteTemplateFunctionRolePolicy0): grants s3:PutObjectAcl, which its code never needs",
    "S3WriteTemplateFunction (S3WriteTemplateFunctionRolePolicy0): grants s3:PutLifecycleConfiguration, which its "
    "code never needs",
    "SalesforceSecretWithoutClientFunction: may read SalesforceSecretArn but its code never uses a Salesforce client",
    "WildcardsFunctionRole/WildcardsFunctionRolePolicy0: grants s3:GetObject on '*', any resource",
    "WildcardsFunctionRole/WildcardsFunctionRolePolicy0: grants sqs:*",
    "WildcardsFunctionRole/WildcardsFunctionRolePolicy0: grants iam:PassRole",
    "WildcardsFunctionRole/WildcardsFunctionRolePolicy0: grants cloudwatch:PutMetricData on '*', any resource",
    "WildcardsFunctionRole/WildcardsFunctionRolePolicy0: uses NotAction",
    "WildcardsFunction (WildcardsFunctionRolePolicy0): ['sqs:SendMessage'] on 'arn:aws:sqs:us-east-1:123456789012:"
    "someone-elses-queue', a resource not taken from the template",
    "AdminFunctionRole: has the managed policy AdministratorAccess",
    "LooseRole/everything: grants *",
    "LooseRole: may be assumed by {'AWS': '*'}, not only by an AWS service",
    "OpenQueuePolicy: grants '*', not an AWS service",
    "OpenQueuePolicy: has no aws:SourceArn or aws:SourceAccount condition",
])
def test_each_rule_catches_its_violation(translate_fixture, expected: str) -> None:
    problems = iam_policies.problems(translate_fixture("overprivileged.yaml"), FIXTURES)
    assert any(p.startswith(expected) for p in problems), "\n".join(problems)


def test_a_scoped_function_passes_every_rule(translate_fixture) -> None:
    """GoodFunction: SAM templates on its own resources, X-Ray on "*", PutMetricData under a namespace condition."""
    problems = iam_policies.problems(translate_fixture("overprivileged.yaml"), FIXTURES)
    assert not [p for p in problems if p.startswith("GoodFunction")], problems


def test_managed_policies_beyond_the_accepted_ones_are_reported() -> None:
    role = {"Properties": {"ManagedPolicyArns": [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AmazonSQSFullAccess",
        "arn:aws:iam::aws:policy/PowerUserAccess",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"],
        "AssumeRolePolicyDocument": {"Statement": [{"Principal": {"Service": ["lambda.amazonaws.com"]}}]}}}
    assert iam_policies.role_problems("R", role, has_sqs_mapping=False) == [
        "R: has the managed policy AmazonSQSFullAccess, not among the accepted ones",
        "R: has the managed policy PowerUserAccess",
        "R: has service-role/AWSLambdaSQSQueueExecutionRole without an SQS event source",
    ]


def test_references_follow_every_intrinsic() -> None:
    value = [{"Ref": "A"}, {"Fn::GetAtt": ["B", "Arn"]}, {"Fn::GetAtt": "C.QueueName"},
             {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${D.QueueName}/${!Literal}"},
             {"Fn::Sub": ["${x}/${E}", {"x": {"Ref": "F"}}]}, "arn:aws:s3:::plain", {"Ref": "AWS::Region"}]
    assert iam_policies.references(value) == {"A", "B", "C", "D", "E", "F"}
