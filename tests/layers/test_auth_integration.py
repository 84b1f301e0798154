"""Authentication against the emulator: every flow, refusals, lazy fetch and reuse across invocations."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from salesforce_access import AuthenticationError, ConfigurationError, SalesforceAccess, get_access, soql
from salesforce_emulator.ids import ORG_ID

from .conftest import LambdaContext, api_calls, log_records, secret_document, token_posts

FLOWS = ["jwt_bearer", "client_credentials", "username_password"]


@pytest.mark.parametrize("flow", FLOWS)
def test_each_flow_authenticates_and_calls_the_api(make_access, emu, flow) -> None:
    access = make_access(flow)
    created = access.request("POST", "sobjects/Account", json={"Name": f"Flow {flow}"})
    assert created["success"] is True
    record = access.client.Account.get(created["id"])  # simple-salesforce on the shared session
    assert record["Name"] == f"Flow {flow}"
    assert len(token_posts(emu)) == 1
    assert [r["status"] for r in token_posts(emu)] == [200]


def test_username_password_flow_logs_a_deprecation_warning(make_access, emu, layer_logs) -> None:
    make_access("username_password").request("GET", "limits")
    warnings = [r for r in log_records(layer_logs) if r["level"] == "WARNING" and "deprecated" in r["message"]]
    assert len(warnings) == 1
    assert "username-password" in warnings[0]["message"]


def test_jwt_signed_with_another_key_is_refused(make_access, emu) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    access = make_access(secret=secret_document(emu.info, "jwt_bearer", private_key=other))
    with pytest.raises(AuthenticationError) as info:
        access.request("GET", "limits")
    assert info.value.error == "invalid_grant"
    assert info.value.status == 400
    assert "BEGIN" not in str(info.value)
    # refused once, secret re-read once (unchanged), so no second token request
    assert [r["status"] for r in token_posts(emu)] == [400]
    assert api_calls(emu) == []


def test_wrong_client_secret_is_refused_with_the_oauth_error(make_access, emu) -> None:
    access = make_access(secret=secret_document(emu.info, "client_credentials", client_secret="WRONG-secret-1"))
    with pytest.raises(AuthenticationError) as info:
        access.request("GET", "limits")
    assert info.value.error == "invalid_client"
    assert "invalid client credentials" in str(info.value)
    assert "WRONG-secret-1" not in str(info.value)


def test_rotated_secret_is_reread_after_an_authentication_failure(emu, put_secret, secretsmanager) -> None:
    arn = put_secret(secret_document(emu.info, "client_credentials", client_secret="stale-secret-000"))
    access = SalesforceAccess(arn, verify=emu.info["ca_bundle"], secret_max_age=3600)
    assert access.settings.flow == "client_credentials"  # cached with the stale value
    secretsmanager.put_secret_value(SecretId=arn, SecretString=json.dumps(
        secret_document(emu.info, "client_credentials")))
    assert access.request("GET", "limits")["DailyApiRequests"]["Max"] == 15000
    assert [r["status"] for r in token_posts(emu)] == [400, 200]


def test_nothing_is_fetched_before_first_use(make_access, emu) -> None:
    access = make_access("jwt_bearer")
    access.bind(LambdaContext())
    _ = access.collections, access.bulk
    assert emu.requests() == []
    assert access.tokens.peek() is None
    assert access.api_usage is None


def test_warm_invocations_reuse_the_token(emu, put_secret, monkeypatch) -> None:
    monkeypatch.setenv("SALESFORCE_SECRET_ARN", put_secret(secret_document(emu.info, "jwt_bearer")))
    monkeypatch.setenv("SALESFORCE_CA_BUNDLE", emu.info["ca_bundle"])

    def handler(context: LambdaContext) -> str:
        access = get_access().bind(context)
        return access.request("POST", "sobjects/Account", json={"Name": "Warm"})["id"]

    handler(LambdaContext())  # cold invocation: one token request
    assert len(token_posts(emu)) == 1
    emu.clear_requests()
    for _ in range(3):  # warm invocations
        handler(LambdaContext())
    assert token_posts(emu) == []
    assert len(api_calls(emu)) == 3
    assert get_access() is get_access()


def test_threads_that_meet_an_expired_token_share_one_new_token(make_access, emu) -> None:
    # A function that fans out over threads (the sync's workers) must not log in once per thread.
    access = make_access("client_credentials")
    access.request("GET", "limits")
    emu.expire_tokens()
    emu.clear_requests()
    start = threading.Barrier(4)

    def call(_: int) -> dict:
        start.wait(timeout=10)  # all four send with the stale token at the same moment
        return access.request("GET", "limits")

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(call, range(4)))
    assert all(result["DailyApiRequests"]["Max"] == 15000 for result in results)
    assert [r["status"] for r in token_posts(emu)] == [200]
    assert 1 <= len([r for r in api_calls(emu) if r["status"] == 401]) <= 4
    assert len([r for r in api_calls(emu) if r["status"] == 200]) == 4


def test_get_access_without_configuration_fails_clearly(monkeypatch) -> None:
    monkeypatch.delenv("SALESFORCE_SECRET_ARN", raising=False)
    with pytest.raises(ConfigurationError, match="SALESFORCE_SECRET_ARN"):
        get_access()


@pytest.mark.parametrize("flow", FLOWS)
def test_user_id_names_the_user_the_token_acts_as(make_access, emu, flow) -> None:
    access = make_access(flow)
    user_id = access.user_id  # fetches the token: no other request
    assert [r["path"] for r in emu.requests()] == ["/services/oauth2/token"]
    [user] = access.query(soql("SELECT Id, Username FROM User WHERE Id = {i}", i=user_id))
    assert user["Username"] == emu.info["username"]
    assert access.org_id == ORG_ID
    created = access.request("POST", "sobjects/Account", json={"Name": f"Written by {flow}"})
    record = access.request("GET", f"sobjects/Account/{created['id']}")
    assert record["LastModifiedById"] == user_id  # what a sync compares to skip its own writes
    emu.expire_tokens()
    access.request("GET", "limits")  # re-authenticates
    assert access.user_id == user_id
    assert len(token_posts(emu)) == 2


def test_another_user_has_another_user_id(make_access, emu) -> None:
    integration = make_access("username_password")
    admin = make_access(secret=secret_document(emu.info, "username_password", username=emu.info["admin_username"],
                                               password=emu.info["admin_password"]))
    assert integration.user_id is not None
    assert admin.user_id is not None
    assert integration.user_id != admin.user_id


@pytest.mark.parametrize(("identity", "expected"), [
    ("https://login.salesforce.com/id/00D5g000004xyzAEAQ/0055g00000AbcdEAAS",
     ("00D5g000004xyzAEAQ", "0055g00000AbcdEAAS")),
    ("https://test.salesforce.com/id/00D5g000004xyzA/0055g00000AbcdE/", ("00D5g000004xyzA", "0055g00000AbcdE")),
    ("https://login.salesforce.com/services/oauth2/userinfo", (None, None)),
    (None, (None, None)),
])
def test_identity_url_parsing(identity, expected) -> None:
    from salesforce_access.auth import AccessToken

    token = AccessToken("t", "https://x.my.salesforce.com", identity_url=identity)
    assert (token.org_id, token.user_id) == expected
