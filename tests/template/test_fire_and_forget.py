"""Pattern 2 in template.yaml: what API Gateway -> SQS, the Event Relay rule and the consumer's event source
do cannot run under moto, so their shape is pinned here (the consumer is tested with the bodies they produce)."""

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


def test_the_api_sends_to_the_contracts_queue_without_a_lambda(signed, resources):
    integration = signed["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws"
    assert integration["httpMethod"] == "POST"
    assert integration["uri"]["Fn::Sub"].endswith(":sqs:path/${AWS::AccountId}/${ContractsQueue.QueueName}")
    assert integration["credentials"] == {"Fn::GetAtt": ["ContractsApiRole", "Arn"]}
    template = integration["requestTemplates"]["application/json"]
    assert template.startswith("Action=SendMessage&MessageBody=$util.urlEncode($input.body)")  # body verbatim
    assert integration["passthroughBehavior"] == "never"  # other content types are refused, not forwarded


def test_the_api_answers_202_with_the_message_id(signed):
    responses = signed["x-amazon-apigateway-integration"]["responses"]
    accepted = responses["200"]
    assert accepted["statusCode"] == "202"
    assert "SendMessageResponse.SendMessageResult.MessageId" in accepted["responseTemplates"]["application/json"]
    assert "message_id" in accepted["responseTemplates"]["application/json"]
    assert responses["default"]["statusCode"] == "500"
    assert set(signed["responses"]) == {"202", "400", "500"}


def test_the_body_is_validated_by_the_model_and_signed_requests_only(signed, resources, model):
    definition = resources["ContractsApi"]["Properties"]["DefinitionBody"]
    validator = signed["x-amazon-apigateway-request-validator"]
    assert definition["x-amazon-apigateway-request-validators"][validator]["validateRequestBody"] is True
    assert signed["requestBody"]["required"] is True
    assert model["required"] == ["contract_id", "account_id"]
    assert model["additionalProperties"] is False
    assert signed["security"] == [{"sigv4": []}]
    assert definition["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    bad_body = definition["x-amazon-apigateway-gateway-responses"]["BAD_REQUEST_BODY"]
    assert bad_body["statusCode"] == 400
    assert "validationErrorString" in bad_body["responseTemplates"]["application/json"]


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
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 5
    assert queue["VisibilityTimeout"] >= 6 * consumer["Timeout"]
    assert queue["SqsManagedSseEnabled"] is True
    assert resources["ContractsDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 1209600


def test_the_consumer_reports_partial_batches_and_protects_billing(resources, template):
    consumer = resources["BillingConsumerFunction"]["Properties"]
    source = consumer["Events"]["Contracts"]
    assert source["Type"] == "SQS"
    assert source["Properties"]["Queue"] == {"Fn::GetAtt": ["ContractsQueue", "Arn"]}
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["Properties"]["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "BillingMaxConcurrency"}
    assert template["Parameters"]["BillingMaxConcurrency"]["MinValue"] == 2  # the SQS minimum
    variables = consumer["Environment"]["Variables"]
    assert variables["CONTRACTS_DLQ_URL"] == {"Ref": "ContractsDeadLetterQueue"}
    assert variables["BILLING_API_URL"] == {"Ref": "BillingApiUrl"}
    policies = json.dumps(consumer["Policies"])
    assert '"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["ContractsDeadLetterQueue", "QueueName"]}}' \
        in policies
    assert "dynamodb:Scan" not in policies  # idempotency needs item operations only
    assert consumer["Handler"] == "billing_consumer.handler.handler"
    assert (ROOT / consumer["CodeUri"] / "billing_consumer" / "handler.py").is_file()


def test_event_relay_rule_targets_the_queue_with_a_dlq(resources, template):
    rule = resources["ContractSignedRule"]
    assert rule["Condition"] == "HasContractEventBus"
    assert rule["Properties"]["EventBusName"] == {"Ref": "ContractEventBusName"}
    assert rule["Properties"]["EventPattern"]["detail-type"] == ["Contract_Signed__e"]
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ContractsQueue", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["ContractsDeadLetterQueue", "Arn"]}
    statement = resources["ContractSignedRuleQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["ContractSignedRule", "Arn"]}
    pattern = template["Parameters"]["ContractEventBusName"]["AllowedPattern"]
    assert re.fullmatch(pattern, "aws.partner/salesforce.com/00D5e000000KQ2eEAG/0YL5e0000004Dfg4AE")
    assert re.fullmatch(pattern, "")


def test_outbound_message_endpoint(resources):
    function = resources["OutboundMessageFunction"]["Properties"]
    event = function["Events"]["Notifications"]["Properties"]
    assert (event["Path"], event["Method"]) == ("/outbound/contracts", "post")
    assert event["RestApiId"] == {"Ref": "OutboundMessageApi"}
    assert function["Environment"]["Variables"]["CONTRACTS_QUEUE_URL"] == {"Ref": "ContractsQueue"}
    assert function["Environment"]["Variables"]["SALESFORCE_ORG_ID"] == {"Ref": "SalesforceOrgId"}
    assert "SecretsManager" not in json.dumps(function["Policies"])  # it never talks to Salesforce
    assert (ROOT / function["CodeUri"] / "outbound_message" / "handler.py").is_file()


def test_the_dlq_is_alarmed(resources):
    alarm = resources["ContractsDeadLetterAlarm"]["Properties"]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["ContractsDeadLetterQueue",
                                                                                 "QueueName"]}}]
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


@pytest.mark.parametrize("name", ["contract-signed-request.json", "contract-signed-event-relay.json",
                                  "contract-signed-outbound-message.json", "contract-signed-sqs-api.json",
                                  "contract-signed-sqs-event-relay.json", "contract-signed-sqs-outbound-message.json"])
def test_sample_events_exist_and_are_json(name):
    assert json.loads((ROOT / "events" / name).read_text())
