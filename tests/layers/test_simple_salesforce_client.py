"""`access.client`: simple-salesforce for a function's own calls, on the layer's session, token and policy.

Each test drives a call through simple-salesforce and checks that what happened on the wire is the
layer's doing: its token (no login of simple-salesforce's own), its backoff and retry limits, its
timeouts, its one re-authentication on INVALID_SESSION_ID, its budget and its typed errors.
"""

from __future__ import annotations

import uuid

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError as SimpleSalesforceError

from salesforce_access import (
    ConnectionFailed,
    NotFound,
    RetryPolicy,
    ServiceUnavailable,
    Timeouts,
    ValidationError,
    soql,
)

from .conftest import LambdaContext, ManualClock, api_calls, token_posts


class FixedDelay(RetryPolicy):
    """Backoff without jitter, so the number of retries a budget allows is exact."""

    def delay(self, retry_number: int, rand: object = None) -> float:
        return self.base_delay


def name_query(name: str) -> str:
    return soql("SELECT Id, Name FROM Account WHERE Name = {n}", n=name)


def test_the_client_uses_the_layers_token_and_session(make_access, emu) -> None:
    access = make_access("jwt_bearer")
    name = f"Shared {uuid.uuid4()}"
    access.request("POST", "sobjects/Account", json={"Name": name})
    client = access.client
    assert isinstance(client, Salesforce)
    assert client.session is access.session
    assert client is access.client  # built once per instance URL, not per use
    assert [r["Name"] for r in client.query(name_query(name))["records"]] == [name]
    assert len(token_posts(emu)) == 1  # simple-salesforce did not log in on its own
    assert access.api_usage is not None
    assert access.api_usage.used == emu.api_usage()[0]  # the client's responses were counted too


def test_transient_failures_of_client_calls_are_retried_with_the_layers_backoff(make_access, emu) -> None:
    clock = ManualClock()
    access = make_access("client_credentials", retry=FixedDelay(base_delay=0.25, max_attempts=4),
                         sleep=clock.sleep, clock=clock)
    name = f"Retried {uuid.uuid4()}"
    access.request("POST", "sobjects/Account", json={"Name": name})
    emu.clear_requests()
    emu.inject("503", count=2, path=r"/query")
    assert access.client.query(name_query(name))["totalSize"] == 1
    assert [r["status"] for r in api_calls(emu, "/query")] == [503, 503, 200]
    assert clock.sleeps == [0.25, 0.25]  # simple-salesforce itself never retries


def test_client_calls_give_up_with_the_layers_typed_error(make_access, emu) -> None:
    clock = ManualClock()
    access = make_access("client_credentials", retry=FixedDelay(base_delay=0.1, max_attempts=3),
                         sleep=clock.sleep, clock=clock)
    access.request("GET", "limits")
    emu.clear_requests()
    emu.inject("503", count=100, path=r"/query")
    with pytest.raises(ServiceUnavailable) as info:
        access.client.query("SELECT Id FROM Account")
    assert info.value.attempts == 3
    assert len(api_calls(emu, "/query")) == 3


def test_client_calls_get_the_layers_read_timeout(make_access, emu) -> None:
    # simple-salesforce sets no timeout: without the layer's session this call would wait for the answer.
    access = make_access("client_credentials", timeouts=Timeouts(2.0, 0.3),
                         retry=FixedDelay(base_delay=0.0, max_attempts=2))
    account_id = access.request("POST", "sobjects/Account", json={"Name": "Slow"})["id"]
    emu.clear_requests()
    emu.inject("delay", count=2, method="GET", path=r"/sobjects/Account/", delay_seconds=1.5)
    with pytest.raises(ConnectionFailed) as info:
        access.client.Account.get(account_id)
    assert info.value.attempts == 2
    assert emu.app.wait_idle(timeout=10.0)  # the delayed answers are logged once they finish
    assert len(api_calls(emu, "/sobjects/Account/")) == 2


def test_an_expired_session_is_renewed_once_for_the_client(make_access, emu) -> None:
    access = make_access("client_credentials")
    client = access.client  # holds the first token as its session_id
    first_token = access.tokens.peek()
    emu.clear_requests()
    emu.inject("INVALID_SESSION_ID", count=1, path=r"/query")
    assert client.query_all("SELECT Id FROM Account LIMIT 1")["done"] is True
    assert [(r["path"].rstrip("/").rsplit("/", 1)[-1], r["status"]) for r in emu.requests()] == [
        ("query", 401), ("token", 200), ("query", 200)]
    assert access.tokens.peek() != first_token
    assert access.client is client  # the same client goes on with the new token


def test_client_calls_stay_inside_the_bound_budget(make_access, emu) -> None:
    clock = ManualClock()
    access = make_access("client_credentials", retry=FixedDelay(base_delay=0.4, max_attempts=100),
                         safety_margin=0.5, sleep=clock.sleep, clock=clock)
    access.request("GET", "limits")
    emu.clear_requests()
    emu.inject("503", count=1000, path=r"/query")
    access.bind(LambdaContext(remaining_ms=2500, clock=clock))  # 2.0 s after the margin
    with pytest.raises(ServiceUnavailable) as info:
        access.client.query("SELECT Id FROM Account")
    # a retry needs its delay plus 0.5 s left: after 0.4, 0.8 and 1.2 s only 0.8 s remain
    assert clock.sleeps == [0.4, 0.4, 0.4]
    assert info.value.attempts == 4


def test_salesforce_errors_reach_the_caller_as_the_layers_exceptions(make_access, emu) -> None:
    access = make_access("client_credentials")
    with pytest.raises(NotFound) as missing:
        access.client.Account.get("001000000000000AAA")
    assert not isinstance(missing.value, SimpleSalesforceError)
    assert missing.value.status == 404
    with pytest.raises(ValidationError) as refused:
        access.client.Account.create({"Industry": "Retail"})  # no Name
    assert refused.value.error_code == "REQUIRED_FIELD_MISSING"


def test_what_the_client_writes_is_read_back_independently(make_access, emu, independent_client) -> None:
    access = make_access("username_password")
    name = f"Written {uuid.uuid4()}"
    created = access.client.Account.create({"Name": name, "Industry": "Retail"})
    assert created["success"] is True
    [record] = independent_client.query(name_query(name))["records"]
    assert record["Id"] == created["id"]
    assert independent_client.session is not access.session
