"""Pattern 2 in template.yaml: what API Gateway -> SQS, the Event Relay rule and the consumer's event source
do cannot run under moto, so what can be checked without AWS is checked here: the request model against the
sample events, the wiring between API, queues, rule, consumer and alarm, and the roles' least privilege.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def resources(template):
    return template["Resources"]


@pytest.fixture(scope="module")
def signed(resources):
    return resources["ContractsApi"]["Properties"]["DefinitionBody"]["paths"]["/contracts/signed"]["post"]


@pytest.fixture(scope="module")
def model(resources):
    return resources["ContractsApi"]["Properties"]["DefinitionBody"]["components"]["schemas"]["ContractSigned"]


def test_every_contracts_route_is_signed_and_validated(resources):
    """No unsigned door into the queue: every method asks for SigV4 and has its body validated."""
    definition = resources["ContractsApi"]["Properties"]["DefinitionBody"]
    validators = definition["x-amazon-apigateway-request-validators"]
    schemes = definition["components"]["securitySchemes"]
    methods = [operation for path in definition["paths"].values() for operation in path.values()]
    assert methods
    for operation in methods:
        [requirement] = operation["security"]
        [scheme] = requirement
        assert schemes[scheme]["x-amazon-apigateway-authtype"] == "awsSigv4"
        assert validators[operation["x-amazon-apigateway-request-validator"]]["validateRequestBody"] is True
        assert operation["requestBody"]["required"] is True
    bad_body = definition["x-amazon-apigateway-gateway-responses"]["BAD_REQUEST_BODY"]
    # the quoted messageString: valid JSON whatever API Gateway says (validationErrorString is not escaped)
    assert "$context.error.messageString" in bad_body["responseTemplates"]["application/json"]


def test_the_api_sends_to_the_queue_its_role_may_send_to(signed, resources):
    integration = signed["x-amazon-apigateway-integration"]
    assert integration["uri"]["Fn::Sub"].endswith(":sqs:path/${AWS::AccountId}/${ContractsQueue.QueueName}")
    assert integration["credentials"] == {"Fn::GetAtt": ["ContractsApiRole", "Arn"]}
    responses = integration["responses"]
    assert {r["statusCode"] for r in responses.values()} <= set(signed["responses"])  # declared in the OpenAPI


def model_accepts(model, body) -> bool:
    """The subset of JSON Schema draft 4 the model uses: required, additionalProperties, string patterns."""
    if not isinstance(body, dict) or any(name not in body for name in model["required"]):
        return False
    for name, value in body.items():
        spec = model["properties"].get(name)
        if spec is None or not isinstance(value, str):
            return False
        if "pattern" in spec and not re.search(spec["pattern"], value):
            return False
        if len(value) > spec.get("maxLength", 10**6):
            return False
    return True


def test_the_model_accepts_the_sample_and_refuses_what_the_consumer_would(model):
    sample = json.loads((ROOT / "events" / "contract-signed-request.json").read_text())
    assert model_accepts(model, sample)
    assert model_accepts(model, {**sample, "contract_id": sample["contract_id"][:15], "request_id": "r-1"})
    assert model_accepts(model, {**sample, "signed_at": "2025-03-01T10:30:00+01:00"})
    for bad in ({"account_id": sample["account_id"]},
                {**sample, "contract_id": sample["account_id"]},
                {**sample, "signed_at": "2025-03-01"},
                {**sample, "unexpected": "x"}):
        assert not model_accepts(model, bad), bad


def test_api_gateway_role_may_only_send_to_the_queue(resources):
    role = resources["ContractsApiRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    [policy] = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["ContractsQueue", "Arn"]}}]


def test_the_queue_redrives_to_the_dlq_and_outlives_the_consumer(resources):
    queue = resources["ContractsQueue"]["Properties"]
    consumer = resources["BillingConsumerFunction"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["ContractsDeadLetterQueue", "Arn"]}
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 5  # AWS's advice for a Lambda consumer
    assert queue["VisibilityTimeout"] >= 6 * consumer["Timeout"]  # else a slow batch is delivered twice


def test_the_consumer_reports_partial_batches_and_may_dead_letter(resources, template):
    consumer = resources["BillingConsumerFunction"]["Properties"]
    source = consumer["Events"]["Contracts"]
    assert source["Properties"]["Queue"] == {"Fn::GetAtt": ["ContractsQueue", "Arn"]}
    # BatchProcessor answers batchItemFailures; without this Lambda ignores them and retries the whole batch.
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    concurrency = source["Properties"]["ScalingConfig"]["MaximumConcurrency"]
    assert template["Parameters"][concurrency["Ref"]]["MinValue"] >= 2  # SQS refuses less
    # the consumer sends poison messages to the DLQ named in its environment: it may send there and nowhere else
    assert consumer["Environment"]["Variables"]["CONTRACTS_DLQ_URL"] == {"Ref": "ContractsDeadLetterQueue"}
    policies = json.dumps(consumer["Policies"])
    assert '"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["ContractsDeadLetterQueue", "QueueName"]}}' \
        in policies
    assert "dynamodb:Scan" not in policies  # idempotency needs item operations only


def test_event_relay_rule_targets_the_queue_with_a_dlq(resources, template):
    rule = resources["ContractSignedRule"]
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ContractsQueue", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["ContractsDeadLetterQueue", "Arn"]}
    statement = resources["ContractSignedRuleQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["ContractSignedRule", "Arn"]}
    pattern = template["Parameters"]["ContractEventBusName"]["AllowedPattern"]
    assert re.fullmatch(pattern, "aws.partner/salesforce.com/00D5e000000KQ2eEAG/0YL5e0000004Dfg4AE")
    assert re.fullmatch(pattern, "")


def test_outbound_message_function_reads_no_salesforce_secret(resources):
    function = resources["OutboundMessageFunction"]["Properties"]
    assert function["Events"]["Notifications"]["Properties"]["RestApiId"] == {"Ref": "OutboundMessageApi"}
    assert "SecretsManager" not in json.dumps(function["Policies"])  # it never talks to Salesforce


def test_the_dlq_is_alarmed(resources):
    alarm = resources["ContractsDeadLetterAlarm"]["Properties"]
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["ContractsDeadLetterQueue",
                                                                                 "QueueName"]}}]
    # one message in the DLQ is one contract not billed
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)


@pytest.mark.parametrize("name", ["contract-signed-request.json", "contract-signed-event-relay.json",
                                  "contract-signed-outbound-message.json", "contract-signed-sqs-api.json",
                                  "contract-signed-sqs-event-relay.json", "contract-signed-sqs-outbound-message.json"])
def test_sample_events_exist_and_are_json(name):
    assert json.loads((ROOT / "events" / name).read_text())
