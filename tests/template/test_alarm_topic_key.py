"""CloudWatch can publish every alarm to the alarm topic: the topic's KMS key lets cloudwatch.amazonaws.com use it.

An alarm action on a KMS-encrypted topic needs kms:Decrypt and kms:GenerateDataKey* on the topic's key for the
CloudWatch service principal, granted in the key policy (SNS developer guide, "Key management": compatibility
between event sources from AWS services and encrypted topics). The AWS managed key alias/aws/sns has a policy
nobody can change that allows only principals of the account through SNS, so every alarm action fails silently.
This test resolves the topic's KmsMasterKeyId to the key resource and evaluates its policy statements for a
request CloudWatch makes on behalf of each alarm of the stack, and for one made on behalf of another account.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import pytest

ACCOUNT, OTHER_ACCOUNT, REGION, PARTITION, STACK = "111122223333", "444455556666", "eu-west-1", "aws", "patterns"
PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION, "AWS::StackName": STACK,
          "AWS::URLSuffix": "amazonaws.com"}
CLOUDWATCH = "cloudwatch.amazonaws.com"
ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")


def resolve(value: Any, resources: dict[str, Any]) -> Any:
    """The value of an intrinsic in a stack named STACK of ACCOUNT (Ref of a key -> its id, of an alias -> its name)."""
    if isinstance(value, list):
        return [resolve(v, resources) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        name = value["Ref"]
        if name in PSEUDO:
            return PSEUDO[name]
        if resources.get(name, {}).get("Type") == "AWS::KMS::Alias":
            return resolve(resources[name]["Properties"]["AliasName"], resources)
        return f"ref:{name}"
    if "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        name, attribute = target if isinstance(target, list) else str(target).split(".", 1)
        if resources.get(name, {}).get("Type") == "AWS::KMS::Key" and attribute in ("Arn", "KeyId"):
            return f"ref:{name}"
        return f"getatt:{name}.{attribute}"
    if "Fn::Sub" in value:
        text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        return re.sub(r"\$\{([^}!]+)\}", lambda m: str(resolve({"Ref": m[1]}, resources)), text)
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(resolve(p, resources)) for p in parts)
    return {k: resolve(v, resources) for k, v in value.items()}


def key_of_topic(template: dict[str, Any]) -> str:
    """Logical id of the AWS::KMS::Key the alarm topic is encrypted with, whether named by id, ARN or alias."""
    resources = template["Resources"]
    key = resolve(resources["AlarmTopic"]["Properties"].get("KmsMasterKeyId"), resources)
    assert key, "the alarm topic is not encrypted"
    assert not str(key).startswith("alias/aws/"), f"{key} is an AWS managed key: its policy cannot admit CloudWatch"
    if isinstance(key, str) and key.startswith("ref:"):
        name = key[4:]
    else:
        aliases = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::KMS::Alias"
                   and resolve(r["Properties"]["AliasName"], resources) == key]
        assert aliases, f"KmsMasterKeyId {key!r} names no alias of this template"
        name = str(resolve(aliases[0]["TargetKeyId"], resources))[4:]
    assert resources[name]["Type"] == "AWS::KMS::Key", name
    return name


def _matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    """IAM condition evaluation for the operators a key policy for a service principal uses."""
    for operator, tests in condition.items():
        for key, expected in tests.items():
            expected_values = [str(v) for v in (expected if isinstance(expected, list) else [expected])]
            actual = context.get(key.lower())  # condition keys are case-insensitive
            if actual is None:
                return operator.endswith("IfExists")
            op = operator.removesuffix("IfExists")
            if op in ("StringEquals", "ArnEquals"):
                ok = actual in expected_values
            elif op in ("StringLike", "ArnLike"):
                ok = any(fnmatch.fnmatchcase(actual, v) for v in expected_values)
            else:
                raise AssertionError(f"condition operator {operator} is not evaluated by this test")
            if not ok:
                return False
    return True


def _applies(statement: dict[str, Any], service: str, action: str, context: dict[str, str]) -> bool:
    principal = statement.get("Principal", {})
    services = principal.get("Service", []) if isinstance(principal, dict) else []
    services = services if isinstance(services, list) else [services]
    if principal != "*" and service not in services:
        return False
    actions = statement.get("Action", [])
    if not any(_matches(a, action) for a in (actions if isinstance(actions, list) else [actions])):
        return False
    resources = statement.get("Resource", [])
    if "*" not in (resources if isinstance(resources, list) else [resources]):
        return False
    return _condition_holds(statement.get("Condition", {}), context)


def allowed(policy: dict[str, Any], service: str, action: str, context: dict[str, str]) -> bool:
    """Whether the key policy alone allows the service principal the action in this request context."""
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    if any(s["Effect"] == "Deny" and _applies(s, service, action, context) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _applies(s, service, action, context) for s in statements)


def alarms(template: dict[str, Any]) -> dict[str, str]:
    """Every alarm that notifies the topic, with the ARN CloudFormation gives it (<stack>-<logical id>-<suffix>)."""
    resources = template["Resources"]
    found = {}
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::CloudWatch::Alarm" and {"Ref": "AlarmTopic"} in props.get("AlarmActions", []):
            alarm_name = resolve(props.get("AlarmName"), resources) or f"{STACK}-{name}-1A2B3C4D5E6F"
            found[name] = f"arn:{PARTITION}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm_name}"
    return found


def context_for(alarm_arn: str, account: str = ACCOUNT) -> dict[str, str]:
    return {"aws:sourceaccount": account, "aws:sourcearn": alarm_arn}


def key_policy(template: dict[str, Any]) -> dict[str, Any]:
    resources = template["Resources"]
    policy: dict[str, Any] = resolve(resources[key_of_topic(template)]["Properties"]["KeyPolicy"], resources)
    return policy


def test_the_alarm_topic_is_encrypted_with_a_customer_managed_key(template: dict[str, Any]) -> None:
    key = template["Resources"][key_of_topic(template)]["Properties"]
    assert key.get("EnableKeyRotation") is True
    assert key.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"  # SNS takes symmetric keys only


def test_cloudwatch_may_use_the_topic_key_for_every_alarm(template: dict[str, Any]) -> None:
    policy = key_policy(template)
    found = alarms(template)
    assert len(found) >= 10, "the template's alarms were not found"
    refused = [(name, action) for name, arn in found.items() for action in ACTIONS
               if not allowed(policy, CLOUDWATCH, action, context_for(arn))]
    assert refused == [], f"CloudWatch may not use the alarm topic's key for {refused}"


@pytest.mark.parametrize("action", ACTIONS)
def test_the_grant_is_only_for_this_accounts_alarms(template: dict[str, Any], action: str) -> None:
    """Confused deputy: CloudWatch acting for another account's alarm, or for something else, is refused."""
    policy = key_policy(template)
    foreign = f"arn:{PARTITION}:cloudwatch:{REGION}:{OTHER_ACCOUNT}:alarm:{STACK}-anything"
    assert not allowed(policy, CLOUDWATCH, action, context_for(foreign, OTHER_ACCOUNT))
    assert not allowed(policy, CLOUDWATCH, action, {})
    assert not allowed(policy, "events.amazonaws.com", action, context_for(next(iter(alarms(template).values()))))


def test_the_account_administers_the_key(template: dict[str, Any]) -> None:
    """Without the account root in the key policy, no IAM policy could ever manage the key again."""
    statements = key_policy(template)["Statement"]
    root = f"arn:{PARTITION}:iam::{ACCOUNT}:root"
    admin = [s for s in statements if s["Effect"] == "Allow" and s.get("Principal", {}).get("AWS") in (root, [root])
             and "kms:*" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])]
    assert admin, "the account root is not granted kms:* on its own key"


def test_the_evaluator_refuses_the_aws_managed_key(template: dict[str, Any]) -> None:
    """Guards the tests above: the topic as it was (alias/aws/sns) fails them."""
    broken = {"Resources": {**template["Resources"], "AlarmTopic": {
        "Type": "AWS::SNS::Topic", "Properties": {"KmsMasterKeyId": "alias/aws/sns"}}}}
    with pytest.raises(AssertionError, match="AWS managed key"):
        key_of_topic(broken)
    policy = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                             "Action": "kms:*", "Resource": "*"}]}
    assert not allowed(policy, CLOUDWATCH, "kms:Decrypt", context_for(f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:x"))
