"""Retries, re-authentication, limits and timeouts against the emulator's fault injection."""

from __future__ import annotations

import uuid

import pytest

from salesforce_access import (
    AllocationExhausted,
    ConnectionFailed,
    OutcomeUnknown,
    RequestLimitExceeded,
    RetryPolicy,
    RowLocked,
    ServiceUnavailable,
    SessionExpired,
    Timeouts,
    soql,
)

from .conftest import LambdaContext, ManualClock, api_calls

ACCOUNTS = "/services/data/v62.0/sobjects/Account"  # the layer's default version


def settle(emu, kind: str) -> None:
    """A delayed request is logged by the emulator only when it finishes, after the client gave up."""
    if kind == "delay":
        assert emu.app.wait_idle(timeout=10.0)


def new_account(access, name: str = "Acme") -> str:
    return access.request("POST", "sobjects/Account", json={"Name": name})["id"]


# -- session expiry ---------------------------------------------------------------------------------

def test_expiry_in_the_middle_of_a_rest_sequence(make_access, emu) -> None:
    access = make_access("client_credentials")
    account_id = new_account(access)
    emu.expire_tokens()
    access.request("PATCH", f"sobjects/Account/{account_id}", json={"Industry": "Retail"})
    emu.expire_tokens()
    assert access.client.Account.get(account_id)["Industry"] == "Retail"  # simple-salesforce, stale session_id
    statuses = [(r["method"], r["status"]) for r in emu.requests()]
    assert statuses == [
        ("POST", 200), ("POST", 201),                # token, create
        ("PATCH", 401), ("POST", 200), ("PATCH", 204),  # expired -> one re-auth -> replay
        ("GET", 401), ("POST", 200), ("GET", 200),
    ]


def test_persistent_invalid_session_reauthenticates_once_then_raises(make_access, emu) -> None:
    access = make_access("jwt_bearer")
    access.request("GET", "limits")
    emu.clear_requests()
    emu.inject("INVALID_SESSION_ID", count=10, path=r"/limits")
    with pytest.raises(SessionExpired) as info:
        access.request("GET", "limits")
    assert info.value.error_code == "INVALID_SESSION_ID"
    assert [(r["path"].rsplit("/", 1)[-1], r["status"]) for r in emu.requests()] == [
        ("limits", 401), ("token", 200), ("limits", 401)]


def test_non_replayable_body_is_not_replayed_after_expiry(make_access, emu) -> None:
    access = make_access("jwt_bearer")
    access.request("GET", "limits")
    emu.expire_tokens()
    emu.clear_requests()
    body = (chunk for chunk in [b'{"Name": "Streamed"}'])
    with pytest.raises(SessionExpired):
        access.send("POST", "sobjects/Account", data=body, headers={"Content-Type": "application/json"})
    assert len(api_calls(emu)) == 1


# -- transient faults -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kind", "method", "extra"),
    [
        ("503", "GET", {}),
        ("UNABLE_TO_LOCK_ROW", "PATCH", {}),
        ("drop", "GET", {}),
        ("delay", "GET", {"delay_seconds": 1.0}),
        ("503", "POST", {}),  # refused before processing: safe to replay even a create
        ("UNABLE_TO_LOCK_ROW", "POST", {}),
    ],
)
def test_transient_faults_are_retried(make_access, emu, kind, method, extra) -> None:
    access = make_access("client_credentials", timeouts=Timeouts(2.0, 0.5))
    account_id = new_account(access)
    emu.clear_requests()
    emu.inject(kind, count=2, method=method, path=r"/sobjects/Account", **extra)
    if method == "GET":
        assert access.request("GET", f"sobjects/Account/{account_id}")["Id"] == account_id
    elif method == "PATCH":
        access.request("PATCH", f"sobjects/Account/{account_id}", json={"Phone": "123"})
    else:
        name = f"Retried {uuid.uuid4()}"
        new_account(access, name)
    settle(emu, kind)
    calls = [r for r in api_calls(emu, "/sobjects/Account") if r["method"] == method]
    assert len(calls) == 3  # two faults, then success
    if method == "POST":
        names = [r["Name"] for r in access.query(soql("SELECT Name FROM Account WHERE Name = {n}", n=name))]
        assert names == [name]  # exactly one record created


@pytest.mark.parametrize(
    ("kind", "error", "extra"),
    [
        ("503", ServiceUnavailable, {}),
        ("UNABLE_TO_LOCK_ROW", RowLocked, {}),
        ("drop", ConnectionFailed, {}),
        ("delay", ConnectionFailed, {"delay_seconds": 0.8}),
    ],
)
def test_persistent_faults_give_up_after_max_attempts(make_access, emu, kind, error, extra) -> None:
    access = make_access("client_credentials", timeouts=Timeouts(2.0, 0.3),
                         retry=RetryPolicy(base_delay=0.01, max_delay=0.02, max_attempts=3))
    access.request("GET", "limits")
    emu.clear_requests()
    emu.inject(kind, count=100, path=r"/limits", **extra)
    with pytest.raises(error) as info:
        access.request("GET", "limits")
    settle(emu, kind)
    assert info.value.attempts == 3
    assert len(api_calls(emu, "/limits")) == 3


def test_retries_stop_within_the_invocation_budget(make_access, emu) -> None:
    clock = ManualClock()
    access = make_access("client_credentials", retry=RetryPolicy(base_delay=0.4, max_delay=0.4, max_attempts=100),
                         safety_margin=0.5, sleep=clock.sleep, clock=clock)
    access.request("GET", "limits")
    emu.clear_requests()
    emu.inject("503", count=1000, path=r"/limits")
    access.bind(LambdaContext(remaining_ms=2500, clock=clock))  # 2.0 s of budget after the margin
    started = clock()
    with pytest.raises(ServiceUnavailable) as info:
        access.request("GET", "limits")
    assert clock() - started <= 2.0 - 0.5  # every retry left time for one more attempt
    assert 1 < info.value.attempts < 100
    assert len(clock.sleeps) == info.value.attempts - 1
    assert len(api_calls(emu, "/limits")) == info.value.attempts


@pytest.mark.parametrize(("kind", "extra"), [("delay", {"delay_seconds": 1.0}), ("drop", {})])
def test_non_idempotent_post_is_not_replayed_once_sent(make_access, emu, kind, extra) -> None:
    access = make_access("client_credentials", timeouts=Timeouts(5.0, 0.4))  # a loaded machine may connect slowly
    access.request("GET", "limits")
    emu.clear_requests()
    emu.inject(kind, count=5, method="POST", path=r"/sobjects/Account", **extra)
    name = f"Maybe {uuid.uuid4()}"
    with pytest.raises(OutcomeUnknown):
        new_account(access, name)
    settle(emu, kind)
    assert len([r for r in api_calls(emu, "/sobjects/Account") if r["method"] == "POST"]) == 1
    if kind == "delay":  # Salesforce did apply it: a blind replay would have created a duplicate
        query = soql("SELECT Name FROM Account WHERE Name = {n}", n=name)
        assert [r["Name"] for r in access.query(query)] == [name]


# -- API allocation ---------------------------------------------------------------------------------

def test_request_limit_exceeded_is_never_retried(make_access, emu) -> None:
    access = make_access("client_credentials")
    access.request("GET", "limits")
    emu.clear_requests()
    emu.inject("REQUEST_LIMIT_EXCEEDED", count=10, path=r"/limits")
    with pytest.raises(RequestLimitExceeded) as info:
        access.request("GET", "limits")
    assert info.value.status == 403
    assert len(emu.requests()) == 1


def test_exhausted_org_allocation_surfaces_without_retries(make_access, emu) -> None:
    access = make_access("client_credentials")
    access.request("GET", "limits")
    emu.set_api_usage(15000)
    emu.clear_requests()
    with pytest.raises(RequestLimitExceeded):
        access.client.Account.create({"Name": "Too late"})
    assert len(emu.requests()) == 1


def test_api_usage_is_tracked_from_every_response(make_access, emu) -> None:
    access = make_access("client_credentials")
    emu.set_api_usage(4321)
    access.request("GET", "limits")
    assert access.api_usage == (4322, 15000)
    new_account(access)
    assert access.api_usage.used == 4323


def test_allocation_guard(make_access, emu) -> None:
    access = make_access("client_credentials")
    emu.set_api_usage(100)
    access.ensure_allocation(max_share=0.8)  # unknown usage: asks /limits once
    assert len(api_calls(emu, "/limits")) == 1
    assert access.allocation_left(0.8)
    emu.set_api_usage(11997)
    new_account(access)  # the response reports 11998/15000
    assert access.allocation_left(0.8)
    new_account(access)
    assert access.allocation_left(0.8)
    new_account(access)  # 12000/15000: 80 % used
    assert access.api_usage == (12000, 15000)
    assert not access.allocation_left(0.8)
    emu.clear_requests()
    with pytest.raises(AllocationExhausted) as info:
        access.ensure_allocation(max_share=0.8)
    assert "12000/15000" in str(info.value)
    assert emu.requests() == []  # the guard itself costs nothing when usage is fresh
    access.ensure_allocation(max_share=0.9)  # a higher guard still lets the job go on


def test_allocation_guard_asks_again_once_the_usage_is_stale(make_access, emu) -> None:
    clock = ManualClock()
    access = make_access("client_credentials", clock=clock)
    emu.set_api_usage(100)
    access.ensure_allocation()
    emu.clear_requests()
    clock.sleep(299.0)
    access.ensure_allocation()  # five minutes not yet passed: the last header is trusted
    assert emu.requests() == []
    emu.set_api_usage(12500)  # someone else used the org meanwhile
    clock.sleep(2.0)
    with pytest.raises(AllocationExhausted):
        access.ensure_allocation()
    assert [r["path"].rsplit("/", 1)[-1] for r in emu.requests()] == ["limits"]
