"""edge_kit.outside_http against the real ERP and billing stand-ins (their fault injection) and moto's Secrets
Manager: which failures are retried and how often, the deadline cutting timeouts and retries, the API key
read, re-read after a 401 and never logged, and every retry logged and counted."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import pytest

from edge_kit.outside_http import (
    ApiKeyReader,
    Budget,
    OutsideBadAnswer,
    OutsideHttpClient,
    OutsideResponse,
    OutsideRetry,
    OutsideTimeout,
    OutsideUnreachable,
    Timeouts,
    invocation_deadline,
)
from stand_ins.billing import BillingServer
from stand_ins.erp import ErpServer

ERP_KEY = "erp-key-0ut51de-9d41"
ITEM = "/inventory/items/SKU-1001"
FAST = Timeouts(connect=0.5, read=1.0)


@dataclass
class Sleeps:
    """Stands in for time.sleep: records the waits instead of waiting."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(scope="module")
def erp_server() -> Iterator[ErpServer]:
    with ErpServer(api_key=ERP_KEY) as erp:
        yield erp


@pytest.fixture
def erp(erp_server: ErpServer) -> Iterator[ErpServer]:
    erp_server.come_up()
    erp_server.reset()
    erp_server.app.api_key = ERP_KEY
    yield erp_server
    erp_server.come_up()
    erp_server.reset()
    erp_server.app.api_key = ERP_KEY


@pytest.fixture(scope="module")
def billing_server() -> Iterator[BillingServer]:
    with BillingServer() as billing:
        yield billing


@pytest.fixture
def billing(billing_server: BillingServer) -> Iterator[BillingServer]:
    billing_server.reset()
    yield billing_server
    billing_server.reset()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(erp: ErpServer, sleeps: Sleeps) -> Callable[..., OutsideHttpClient]:
    def make(**kwargs: Any) -> OutsideHttpClient:
        kwargs.setdefault("timeouts", FAST)
        kwargs.setdefault("api_key", ERP_KEY)
        return OutsideHttpClient("erp", erp.url, sleep=sleeps, **kwargs)
    return make


def statuses(erp: ErpServer) -> list[int | None]:
    return [entry["status"] for entry in erp.requests()]


def logged(stream: io.StringIO, message: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [record for record in records if record.get("message") == message]


def emitted_metrics(out: str) -> list[dict[str, Any]]:
    """The EMF documents printed to stdout (the function's metrics in Lambda)."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


# -- retries ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "status", "error"), [("503", 503, None), ("429", 429, None),
                                                       ("drop", None, "OutsideUnreachable")])
def test_a_transient_failure_of_a_read_is_retried_logged_and_counted(client, erp, sleeps, layer_logs, capsys,
                                                                      kind, status, error):
    erp.inject(kind)
    answer = client().request("GET", ITEM, idempotent=True)
    assert (answer.status, answer.attempts) == (200, 2)
    assert answer.json()["sku"] == "SKU-1001"
    assert statuses(erp) == [status, 200]
    [retry] = logged(layer_logs, "outside call retried")
    assert {k: retry.get(k) for k in ("system", "method", "path", "attempt", "status", "error")} == {
        "system": "erp", "method": "GET", "path": ITEM, "attempt": 1, "status": status, "error": error}
    [metric] = [m for m in emitted_metrics(capsys.readouterr().out) if "OutsideRetries" in m]
    assert metric["OutsideRetries"] == [1.0]
    assert metric["system"] == "erp"
    assert ["system"] in [d[:1] for d in metric["_aws"]["CloudWatchMetrics"][0]["Dimensions"]]


def test_a_short_retry_after_is_waited_for(client, erp, sleeps):
    erp.inject("503")  # Retry-After: 1
    assert client().request("GET", ITEM, idempotent=True).status == 200
    assert sleeps.waits == [1.0]


def test_a_retry_after_longer_than_the_policy_allows_ends_the_retries(client, erp, sleeps):
    erp.inject("down")  # 503 with Retry-After: 30
    answer = client().request("GET", ITEM, idempotent=True)
    assert (answer.status, answer.retry_after, answer.attempts) == (503, 30, 1)
    assert sleeps.waits == []
    assert statuses(erp) == [503]


def test_retries_stop_at_max_attempts_and_the_last_answer_is_returned(client, erp, sleeps):
    erp.inject("503", count=None)
    answer = client(retry=OutsideRetry(max_attempts=3)).request("GET", ITEM, idempotent=True)
    assert (answer.status, answer.attempts) == (503, 3)
    assert statuses(erp) == [503, 503, 503]
    assert len(sleeps.waits) == 2


def test_a_request_that_is_not_safe_to_repeat_is_never_retried(client, erp, sleeps, layer_logs):
    erp.inject("503")
    answer = client().request("POST", "/customers", idempotent=False, json={"name": "Once Only"})
    assert answer.status == 503
    erp.inject("drop")
    with pytest.raises(OutsideUnreachable):
        client().request("POST", "/customers", idempotent=False, json={"name": "Once Only"})
    assert statuses(erp) == [503, None]
    assert sleeps.waits == []
    assert logged(layer_logs, "outside call retried") == []


def test_statuses_outside_the_policy_are_returned_at_once(client, erp):
    erp.inject("500")
    assert client().request("GET", ITEM, idempotent=True).status == 500
    assert client().request("GET", "/inventory/items/SKU-0404", idempotent=True).status == 404
    assert statuses(erp) == [500, 404]


def test_a_policy_can_make_500_transient(client, erp):
    erp.inject("500")
    retry = OutsideRetry(statuses=frozenset({500, 502, 503, 504}))
    assert client(retry=retry).request("GET", ITEM, idempotent=True).status == 200
    assert statuses(erp) == [500, 200]


def test_refused_connections_are_unreachable_after_the_retries(client, erp, sleeps):
    erp.go_down()
    with pytest.raises(OutsideUnreachable) as failure:
        client().request("GET", ITEM, idempotent=True)
    assert failure.value.attempts == 2
    assert len(sleeps.waits) == 1
    assert str(failure.value) == f"erp GET {ITEM}: could not be reached or dropped the connection (after 2 attempts)"


def test_an_answer_larger_than_the_limit_is_a_bad_answer_and_not_retried(client, erp, sleeps):
    with pytest.raises(OutsideBadAnswer):
        client(max_body_bytes=100).request("GET", ITEM, idempotent=True)
    assert statuses(erp) == [200]
    assert sleeps.waits == []


def test_a_post_with_an_idempotency_key_is_retried_with_the_same_key(billing, sleeps):
    http = OutsideHttpClient("billing", billing.url, timeouts=FAST, sleep=sleeps)
    billing.inject("503")
    body = {"contract_id": "800000000000001AAA", "account_id": "001000000000001AAA"}
    answer = http.request("POST", "/billing-accounts", idempotent=True, json=body,
                          headers={"Idempotency-Key": "contract-800000000000001AAA"})
    assert answer.status == 201
    posts = [r for r in billing.requests() if r["method"] == "POST"]
    assert [r["status"] for r in posts] == [503, 201]
    assert {r["headers"]["idempotency-key"] for r in posts} == {"contract-800000000000001AAA"}
    assert len(billing.accounts(contract_id="800000000000001AAA")) == 1


# -- the deadline -------------------------------------------------------------------------------------------------


def test_timeouts_are_cut_to_the_deadline(client, erp):
    erp.set_latency(5)
    started = time.monotonic()
    with pytest.raises(OutsideTimeout):
        client(timeouts=Timeouts(connect=1.0, read=20.0)).request("GET", ITEM, idempotent=True,
                                                                  deadline=Budget.seconds(0.5))
    assert time.monotonic() - started < 2.0  # the 0.5 s deadline, not the 20 s read timeout nor the 5 s latency
    assert len(erp.requests()) == 1  # no time left for another attempt


@pytest.mark.parametrize(("budget", "attempts"), [(5.0, 2), (0.6, 1)])
def test_a_timeout_is_retried_only_if_the_deadline_holds_a_whole_attempt(client, erp, sleeps, budget, attempts):
    erp.inject("hang", count=None, delay_seconds=10)
    timeouts = Timeouts(connect=0.2, read=0.3)  # a whole attempt: 0.5 s, plus the 0.2 s margin
    with pytest.raises(OutsideTimeout) as failure:
        client(timeouts=timeouts).request("GET", ITEM, idempotent=True, deadline=Budget.seconds(budget))
    assert failure.value.attempts == attempts
    assert len(erp.requests()) == attempts


def test_a_retry_after_that_outlasts_the_deadline_is_not_waited_for(client, erp, sleeps):
    erp.inject("503")  # Retry-After: 1
    retry = OutsideRetry(max_retry_after=60)
    answer = client(retry=retry).request("GET", ITEM, idempotent=True, deadline=Budget.seconds(1.2))
    assert (answer.status, answer.retry_after) == (503, 1)
    assert sleeps.waits == []


def test_no_attempt_is_made_when_the_deadline_has_passed(client, erp):
    with pytest.raises(OutsideTimeout, match="no time left"):
        client().request("GET", ITEM, idempotent=True, deadline=Budget.seconds(0))
    assert erp.requests() == []


def test_the_invocation_deadline_is_the_budget_cut_to_the_lambda_time_left(lambda_context):
    def frozen() -> float:
        return 100.0

    lambda_context.timeout_ms = 1_200
    assert invocation_deadline(lambda_context, clock=frozen).remaining() == pytest.approx(0.7)
    assert invocation_deadline(lambda_context, budget_seconds=0.3, clock=frozen).remaining() == pytest.approx(0.3)
    lambda_context.timeout_ms = 100
    assert invocation_deadline(lambda_context, clock=frozen).remaining() == 0.0


def test_retry_after_is_read_as_seconds_or_an_http_date():
    def answer(value: str) -> OutsideResponse:
        return OutsideResponse(503, {"Retry-After": value}, b"", 1)

    assert answer("7").retry_after == 7
    assert 50 < (answer(formatdate(time.time() + 60, usegmt=True)).retry_after or 0) <= 60
    assert answer("soon").retry_after is None
    assert OutsideResponse(503, {}, b"", 1).retry_after is None


# -- the key ------------------------------------------------------------------------------------------------------


def test_the_key_is_read_from_secrets_manager_and_read_again_once_after_a_401(client, erp, secretsmanager):
    arn = secretsmanager.create_secret(Name="erp/key", SecretString=json.dumps({"api_key": ERP_KEY}))["ARN"]
    reader = ApiKeyReader(arn)
    http = client(api_key=reader)
    assert http.request("GET", ITEM, idempotent=True).status == 200
    secretsmanager.put_secret_value(SecretId=arn, SecretString="rotated-key-5150")  # a bare key this time
    erp.app.api_key = "rotated-key-5150"
    assert http.request("GET", ITEM, idempotent=True).status == 200  # the cached key is refused, then re-read
    assert http.request("GET", ITEM, idempotent=True).status == 200  # the new one is cached now
    assert statuses(erp) == [200, 401, 200, 200]


def test_a_key_that_stays_refused_is_re_read_only_once(client, erp, secretsmanager, sleeps):
    arn = secretsmanager.create_secret(Name="erp/key", SecretString="not-the-key")["ARN"]
    answer = client(api_key=ApiKeyReader(arn)).request("GET", ITEM, idempotent=True)
    assert answer.status == 401
    assert statuses(erp) == [401, 401]
    assert sleeps.waits == []


def test_a_fixed_key_is_not_resent_after_a_401(client, erp):
    assert client(api_key="not-the-key").request("GET", ITEM, idempotent=True).status == 401
    assert statuses(erp) == [401]


def test_no_secret_means_no_key(erp, secretsmanager):
    assert ApiKeyReader("")() is None
    arn = secretsmanager.create_secret(Name="erp/key", SecretString=json.dumps({"other": "x"}))["ARN"]
    assert ApiKeyReader(arn)() is None


def test_a_secret_that_is_broken_json_names_the_secret_not_its_value(secretsmanager):
    arn = secretsmanager.create_secret(Name="erp/key", SecretString='{"api_key": "s3cr3t-value",')["ARN"]
    with pytest.raises(ValueError, match="erp/key") as failure:
        ApiKeyReader(arn)()
    assert "s3cr3t-value" not in str(failure.value)


def test_the_key_never_appears_in_logs_errors_or_metrics(client, erp, secretsmanager, sleeps, layer_logs, capsys):
    arn = secretsmanager.create_secret(Name="erp/key", SecretString=json.dumps({"api_key": ERP_KEY}))["ARN"]
    reader = ApiKeyReader(arn)
    http = client(api_key=reader)
    erp.inject("503")
    assert http.request("GET", ITEM, idempotent=True).status == 200  # a retry: logged and counted
    erp.app.api_key = "another-key"
    assert http.request("GET", ITEM, idempotent=True).status == 401  # refused: the key re-read, logged
    erp.go_down()
    with pytest.raises(OutsideUnreachable) as failure:
        http.request("GET", ITEM, idempotent=True)
    out = layer_logs.getvalue() + capsys.readouterr().out
    assert logged(layer_logs, "outside call retried")  # the logs are really captured
    assert logged(layer_logs, "outside system refused the API key; reading it again")
    assert "OutsideRetries" in out
    for text in (out, str(failure.value), repr(failure.value), repr(reader), repr(http.__dict__)):
        assert ERP_KEY not in text
