"""`local up` machinery on the fixture template: every route and auth mode, SQS with partial failures and
redrive, EventBridge routing through moto's pattern matching, asynchronous retries, schedules, the SQS
direct integration. The probe function records what reached it from its own process."""

from __future__ import annotations

import json

import pytest
import requests

from local.stack import LocalStack
from local.stack.runtime import collecting_sink

from .conftest import FIXTURE_TEMPLATE, ProbeLog


@pytest.fixture(scope="module")
def stack(probe_env_file, probe_log: ProbeLog):
    lines: list = []
    with LocalStack(FIXTURE_TEMPLATE, env_file=probe_env_file, retry_delays=(0.2,),
                    log_sink=collecting_sink(lines)) as s:
        s.lines = lines
        yield s


@pytest.fixture(autouse=True)
def _clean(stack, probe_log: ProbeLog):
    assert stack.wait_idle(20)
    probe_log.clear()


def _url(stack, path: str) -> str:
    return f"{stack.api_url}{path}"


def _signed(stack, method: str, path: str, body: str = "", **headers: str) -> requests.Response:
    url = _url(stack, path)
    all_headers = {**stack.iam_headers(method, url, body, headers), **headers}
    return requests.request(method, url, data=body.encode(), headers=all_headers, timeout=10)


# -- API Gateway ------------------------------------------------------------------------------------------------


def test_an_open_route_receives_a_rest_proxy_event(stack, probe_log: ProbeLog):
    response = requests.get(_url(stack, "/open/42?tag=a&tag=b&x=1"), headers={"X-Trace": "t1"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["X-Probe"] == "yes"
    assert response.headers["x-amzn-RequestId"]
    seen = response.json()
    assert seen["pathParameters"] == {"id": "42"}
    assert seen["query"] == {"tag": "b", "x": "1"}
    assert seen["multiQuery"] == {"tag": ["a", "b"], "x": ["1"]}
    assert seen["resource"] == "/open/{id}"
    assert seen["stage"] == "v1"
    assert seen["headers"]["X-Trace"] == "t1"
    (entry,) = probe_log.entries("api")
    event = entry["event"]
    assert event["httpMethod"] == "GET"
    assert event["path"] == "/open/42"
    assert event["requestContext"]["path"] == "/v1/open/42"
    assert event["requestContext"]["requestId"] == response.headers["x-amzn-RequestId"]
    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_an_iam_route_refuses_unsigned_requests_with_the_apis_gateway_response(stack, probe_log: ProbeLog):
    unsigned = requests.post(_url(stack, "/signed"), data="{}", timeout=10)
    assert unsigned.status_code == 403
    assert unsigned.json() == {"code": "MISSING_AUTHENTICATION_TOKEN", "message": "Missing Authentication Token"}
    bearer = requests.post(_url(stack, "/signed"), data="{}", headers={"Authorization": "Bearer x"}, timeout=10)
    assert bearer.status_code == 403
    assert bearer.json()["code"] == "INCOMPLETE_SIGNATURE"
    assert probe_log.entries("api") == []


def test_an_iam_route_accepts_a_sigv4_signed_request(stack):
    response = _signed(stack, "POST", "/signed", '{"a": 1}', **{"Content-Type": "application/json"})
    assert response.status_code == 200
    seen = response.json()
    assert seen["body"] == '{"a": 1}'
    assert seen["identity"]["accessKey"] == "AKIALOCALEXAMPLE"


def test_an_api_key_route_checks_x_api_key(stack):
    url = _url(stack, "/keyed")
    assert requests.get(url, timeout=10).status_code == 403
    wrong = requests.get(url, headers={"x-api-key": "wrong"}, timeout=10)
    assert (wrong.status_code, wrong.json()) == (403, {"code": "INVALID_API_KEY", "message": "Forbidden"})
    right = requests.get(url, headers={"x-api-key": stack.api_key}, timeout=10)
    assert right.status_code == 200
    assert right.json()["identity"]["apiKey"] == stack.api_key


def test_unknown_paths_and_methods_answer_missing_authentication_token(stack):
    unknown = requests.get(_url(stack, "/nowhere"), timeout=10)
    assert unknown.status_code == 403
    assert unknown.json() == {"message": "Missing Authentication Token"}
    assert unknown.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    wrong_method = requests.delete(_url(stack, "/open/1"), timeout=10)
    assert wrong_method.status_code == 403  # the path exists, the method does not: the ProbeApi's own response
    assert wrong_method.json()["code"] == "MISSING_AUTHENTICATION_TOKEN"


def test_a_greedy_any_route_on_the_implicit_api(stack, probe_log: ProbeLog):
    response = requests.put(_url(stack, "/files/a/b/c.txt"), data=b"\xff\x00binary", timeout=10)
    assert response.status_code == 200
    assert response.json()["pathParameters"] == {"proxy": "a/b/c.txt"}
    assert response.json()["stage"] == "Prod"
    event = probe_log.entries("api")[0]["event"]
    assert event["isBase64Encoded"] is True


def test_function_errors_are_502_and_slow_answers_504(stack):
    crash = requests.get(_url(stack, "/open/x/crash"), timeout=10)
    assert crash.status_code == 502
    assert crash.json() == {"message": "Internal server error"}  # ProbeApi shapes only 4XX responses
    slow = requests.post(_url(stack, "/slow"), json={"action": "sleep", "seconds": 0.9}, timeout=10)
    assert slow.status_code == 504  # the route's TimeoutInMillis (500 ms) is shorter than the function's
    assert slow.json() == {"message": "Endpoint request timed out"}


def test_the_sqs_integration_validates_then_queues_and_answers_202(stack):
    body = json.dumps({"sku": "SKU-1", "quantity": 3})
    accepted = _signed(stack, "POST", "/intake", body, **{"Content-Type": "application/json"})
    assert accepted.status_code == 202
    message_id = accepted.json()["message_id"]
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName="salesforce-integration-intake")["QueueUrl"]
    (message,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    assert message["MessageId"] == message_id
    assert json.loads(message["Body"]) == {"sku": "SKU-1", "quantity": 3}
    assert message["MessageAttributes"]["request_id"]["StringValue"] == accepted.headers["x-amzn-RequestId"]

    invalid = _signed(stack, "POST", "/intake", '{"sku": "nope"}', **{"Content-Type": "application/json"})
    assert invalid.status_code == 400
    assert invalid.json() == {"message": "Invalid request body"}
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None
    wrong_type = _signed(stack, "POST", "/intake", "sku=1", **{"Content-Type": "text/plain"})
    assert wrong_type.status_code == 400  # validation first; an unmatched content type is refused anyway
    unsigned = requests.post(_url(stack, "/intake"), data=body, timeout=10)
    assert unsigned.status_code == 403


# -- SQS event source ----------------------------------------------------------------------------------------------


def test_sqs_batches_partial_failures_and_redrive_to_the_dlq(stack, probe_log: ProbeLog):
    sqs = stack.client("sqs")
    queue = stack.queue_url("WorkQueue")
    dlq = stack.queue_url("WorkDeadLetterQueue")
    sqs.send_message(QueueUrl=queue, MessageBody="ok-1", MessageAttributes={
        "origin": {"DataType": "String", "StringValue": "test"}})
    sqs.send_message(QueueUrl=queue, MessageBody="fail-1")
    # the failing message is received twice (maxReceiveCount 2, visibility 1 s), then moto moves it to the DLQ
    entries = probe_log.wait_for(lambda es: sum(r["body"] == "fail-1" for e in es if e["kind"] == "sqs"
                                                for r in e["event"]["Records"]) >= 2, timeout=20)
    records = [r for e in entries if e["kind"] == "sqs" for r in e["event"]["Records"]]
    ok = next(r for r in records if r["body"] == "ok-1")
    assert ok["eventSource"] == "aws:sqs"
    assert ok["eventSourceARN"].endswith(":salesforce-integration-WorkQueue")
    assert ok["messageAttributes"]["origin"]["stringValue"] == "test"
    assert ok["attributes"]["ApproximateReceiveCount"] == "1"
    assert sum(r["body"] == "ok-1" for r in records) == 1  # deleted after success, never redelivered
    dead = []
    for _ in range(40):
        dead = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages", [])
        if dead:
            break
    assert [m["Body"] for m in dead] == ["fail-1"]


def test_a_crashed_batch_is_redelivered(stack, probe_log: ProbeLog):
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=stack.queue_url("WorkQueue"), MessageBody="crash")
    probe_log.wait_for(lambda es: sum(1 for e in es if e["kind"] == "sqs") >= 2, timeout=20)
    failures = [d for d in stack.history if d.source == "sqs:WorkQueue" and not d.ok and d.error]
    assert failures
    assert failures[-1].error["errorType"] == "RuntimeError"


# -- EventBridge, asynchronous invocations, schedules -------------------------------------------------------------


def test_events_matching_the_rule_invoke_the_function_and_others_do_not(stack, probe_log: ProbeLog):
    bus = "salesforce-integration-orders"
    stack.put_events([
        {"EventBusName": bus, "Source": "shop", "DetailType": "OrderPlaced", "Detail": {"order": 1, "amount": 500}},
        {"EventBusName": bus, "Source": "shop", "DetailType": "OrderPlaced", "Detail": {"order": 2, "amount": 5}},
        {"EventBusName": bus, "Source": "shop", "DetailType": "OrderCancelled", "Detail": {"order": 3}},
    ])
    assert stack.wait_idle(20)
    events = [e["event"] for e in probe_log.entries("eventbridge")]
    assert [e["detail"]["order"] for e in events] == [1]  # numeric matching is moto's
    assert events[0]["detail-type"] == "OrderPlaced"
    assert events[0]["source"] == "shop"
    # the rule with a queue target got both order events, as moto delivers them
    audit = stack.client("sqs").receive_message(QueueUrl=stack.queue_url("RuleQueue"), MaxNumberOfMessages=10,
                                                WaitTimeSeconds=1).get("Messages", [])
    assert sorted(json.loads(m["Body"])["detail"]["order"] for m in audit) == [1, 2, 3]


def test_a_failing_event_is_retried_then_sent_to_the_on_failure_destination(stack, probe_log: ProbeLog):
    stack.put_events([{"EventBusName": "salesforce-integration-orders", "Source": "shop",
                       "DetailType": "OrderPlaced", "Detail": {"order": 9, "amount": 101, "fail": True}}])
    assert stack.wait_idle(20)
    assert len(probe_log.entries("eventbridge")) == 2  # MaximumRetryAttempts: 1
    sqs = stack.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=stack.queue_url("AsyncFailures"), WaitTimeSeconds=1)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"]["detail"]["order"] == 9
    assert record["responsePayload"]["errorType"] == "ValueError"


def test_schedules_fire_on_demand(stack, probe_log: ProbeLog):
    assert set(stack.schedules()) == {"NightlySchedule", "ProbeFunctionHourly"}
    nightly = stack.fire_schedule("NightlySchedule")
    assert nightly is not None
    assert nightly.ok
    assert probe_log.entries("nightly")[0]["event"] == {"action": "nightly"}
    hourly = stack.fire_schedule("ProbeFunctionHourly")
    assert hourly is not None
    event = probe_log.entries("eventbridge")[0]["event"]
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    with pytest.raises(KeyError, match="no schedule 'Weekly'"):
        stack.fire_schedule("Weekly")


def test_control_endpoint_fires_a_schedule(stack, probe_log: ProbeLog):
    response = requests.post(_url(stack, "/__local/schedules/NightlySchedule/fire"), timeout=30)
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert len(probe_log.entries("nightly")) == 1
    missing = requests.post(_url(stack, "/__local/schedules/Nope/fire"), timeout=30)
    assert missing.status_code == 404


# -- resources and environment -------------------------------------------------------------------------------------


def test_resources_exist_in_moto_and_functions_see_them(stack):
    env = stack.invoke("ProbeFunction", {"action": "env"}).payload["env"]
    assert env["AWS_ENDPOINT_URL"] == stack.moto.endpoint
    assert env["QUEUE_URL"] == stack.queue_url("WorkQueue")
    assert env["FROM_ENV_FILE"] == "quoted value"
    assert env["NEEDED_LATER"] == "given-by-env-file"  # a PARAM: line of the env file
    assert env["SALESFORCE_CA_BUNDLE"].endswith(".pem")
    ddb = stack.client("dynamodb")
    assert ddb.describe_time_to_live(TableName=env["TABLE_NAME"])["TimeToLiveDescription"]["AttributeName"] == \
        "expiration"
    attrs = stack.client("sqs").get_queue_attributes(QueueUrl=env["QUEUE_URL"], AttributeNames=["All"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] == 2
    secret = json.loads(stack.secret_value("HmacSecret"))
    assert secret["purpose"] == "webhooks"
    assert len(secret["current"]) == 40
    assert secret["current"].isalnum()
    assert env["SECRET_ARN"] == stack.client("secretsmanager").describe_secret(SecretId=env["SECRET_ARN"])["ARN"]


def test_the_summary_lists_what_is_not_wired(stack):
    summary = stack.summary()
    problems = "\n".join(summary["problems"])
    assert "AWS::StepFunctions::StateMachine" in problems
    assert "by s3.amazonaws.com are not emulated" in problems
    assert any("POST   /intake" in r for r in summary["routes"])
