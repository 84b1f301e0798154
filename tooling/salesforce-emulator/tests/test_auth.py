"""OAuth flows and SOAP login, driven the way simple-salesforce and the layer drive them."""

from __future__ import annotations

import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce, SalesforceAuthenticationFailed, SalesforceExpiredSession

from salesforce_emulator import Emulator, connection
from salesforce_emulator.connection import fetch_token, https_session


def redirected_session(info: dict) -> requests.Session:
    return connection.redirected_session(info, ("login", "acme.my"))


def token_request(info: dict, session: requests.Session, **form: str) -> requests.Response:
    return session.post(f"{info['login_url']}/services/oauth2/token", data=form, timeout=10)


def assertion(info: dict, key_pem: bytes | None = None, **claims: object) -> str:
    body = {"iss": info["client_id"], "sub": info["username"], "aud": info["login_url"],
            "exp": int(time.time()) + 180}
    body.update(claims)
    if key_pem is None:
        with open(info["private_key_file"], "rb") as handle:
            key_pem = handle.read()
    key = key_pem
    return jwt.encode(body, key, algorithm="RS256")


def test_jwt_bearer_flow_returns_a_working_token(emu: Emulator, session: requests.Session) -> None:
    info = emu.info
    resp = token_request(info, session, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
                         assertion=assertion(info))
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == info["instance_url"]
    assert body["issued_at"].isdigit()
    assert len(body["issued_at"]) == 13  # epoch milliseconds as a string
    assert "refresh_token" not in body  # JWT bearer never issues one
    sf = Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], session=session)
    assert sf.query("SELECT Id FROM User WHERE Username = 'integration@example.com'")["totalSize"] == 1


def test_jwt_accepts_a_numeric_string_exp_as_simple_salesforce_sends(emu: Emulator, session: requests.Session) -> None:
    info = emu.info
    resp = token_request(info, session, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
                         assertion=assertion(info, exp=f"{time.time() + 180:.0f}"))
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"exp": int(time.time()) - 10}, "invalid_grant", "expired authorization code"),
        ({"iss": "not-the-consumer-key"}, "invalid_client_id", "client identifier invalid"),
        ({"sub": "nobody@example.com"}, "invalid_grant", "user hasn't approved this consumer"),
        ({"aud": "https://evil.example.com"}, "invalid_grant", "audience is invalid"),
    ],
)
def test_jwt_refusals(emu: Emulator, session: requests.Session, claims: dict, error: str, description: str) -> None:
    info = emu.info
    resp = token_request(info, session, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
                         assertion=assertion(info, **claims))
    assert resp.status_code == 400
    assert resp.json() == {"error": error, "error_description": description}


def test_jwt_signed_with_another_key_is_refused(emu: Emulator, session: requests.Session) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    resp = token_request(emu.info, session, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
                         assertion=assertion(emu.info, key_pem=other))
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"


def test_client_credentials_with_basic_auth_and_in_body(emu: Emulator, session: requests.Session) -> None:
    info = emu.info
    basic = session.post(f"{info['login_url']}/services/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=(info["client_id"], info["client_secret"]), timeout=10)
    assert basic.status_code == 200
    body = token_request(info, session, grant_type="client_credentials", client_id=info["client_id"],
                         client_secret=info["client_secret"])
    assert body.status_code == 200
    wrong = token_request(info, session, grant_type="client_credentials", client_id=info["client_id"],
                          client_secret="wrong")
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_client"


def test_password_flow_and_its_failures(emu: Emulator, session: requests.Session) -> None:
    info = emu.info
    common = {"grant_type": "password", "client_id": info["client_id"], "client_secret": info["client_secret"]}
    ok = token_request(info, session, username=info["username"], password=info["password"], **common)
    assert ok.status_code == 200
    bad = token_request(info, session, username=info["username"], password="nope", **common)
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid_grant", "error_description": "authentication failure"}


def test_refresh_token_grant(emu: Emulator, session: requests.Session) -> None:
    info = emu.info
    refresh = emu.app.auth.new_refresh_token(emu.app.integration_user_id, info["client_id"])  # as a web flow would
    ok = token_request(info, session, grant_type="refresh_token", refresh_token=refresh, client_id=info["client_id"])
    assert ok.status_code == 200
    assert ok.json()["access_token"]
    bad = token_request(info, session, grant_type="refresh_token", refresh_token="5Aepnothing",
                        client_id=info["client_id"])
    assert bad.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("form", "content_type", "error"),
    [
        ({"grant_type": "magic"}, None, "unsupported_grant_type"),
        ({}, None, "invalid_request"),
        ({"grant_type": "password"}, "application/json", "unsupported_grant_type"),
    ],
)
def test_token_endpoint_bad_requests(emu: Emulator, session: requests.Session, form: dict, content_type: str | None,
                                     error: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = "{}" if content_type else form
    resp = session.post(f"{emu.info['login_url']}/services/oauth2/token", data=body, headers=headers, timeout=10)
    assert resp.status_code == 400
    assert resp.json()["error"] == error


def test_simple_salesforce_jwt_login_through_its_own_code(emu: Emulator) -> None:
    info = emu.info
    sf = Salesforce(username=info["username"], consumer_key=info["client_id"],
                    privatekey_file=info["private_key_file"], session=redirected_session(info))
    assert sf.sf_instance == info["instance_url"].removeprefix("https://")
    assert sf.Account.create({"Name": "Via JWT"})["success"] is True


def test_simple_salesforce_client_credentials_login(emu: Emulator) -> None:
    info = emu.info
    sf = Salesforce(consumer_key=info["client_id"], consumer_secret=info["client_secret"], domain="acme.my",
                    session=redirected_session(info))
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] >= 2


def test_simple_salesforce_soap_login_and_its_fault(emu: Emulator) -> None:
    info = emu.info
    sf = Salesforce(username=info["username"], password=info["password"], security_token="",
                    session=redirected_session(info))
    assert sf.session_id.startswith("00D")
    with pytest.raises(SalesforceAuthenticationFailed) as failed:
        Salesforce(username=info["username"], password="wrong", security_token="", session=redirected_session(info))
    assert failed.value.code == "INVALID_LOGIN"


def test_soap_login_is_refused_from_api_65(emu: Emulator) -> None:
    info = emu.info
    with pytest.raises(SalesforceAuthenticationFailed) as failed:
        Salesforce(username=info["username"], password=info["password"], security_token="", version="65.0",
                   session=redirected_session(info))
    assert failed.value.code == "UNSUPPORTED_API_VERSION"


def test_unknown_and_expired_tokens_get_invalid_session_id() -> None:
    with Emulator(token_ttl_seconds=1) as short:
        info = short.info
        session = https_session(info)
        token = fetch_token(info, session)
        url = f"{info['instance_url']}/services/data/v62.0/limits"
        assert session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
        time.sleep(1.2)
        expired = session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert expired.status_code == 401
        assert expired.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID",
                                   "fields": []}]
        assert "Sforce-Limit-Info" not in expired.headers
        unknown = session.get(url, headers={"Authorization": "Bearer 00Dnope"}, timeout=10)
        assert unknown.status_code == 401
        missing = session.get(url, timeout=10)
        assert missing.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_a_client_built_from_a_token_cannot_refresh(emu: Emulator, sf: Salesforce) -> None:
    """What the project's layer exists to fix: simple-salesforce raises instead of logging in again."""
    emu.expire_tokens()
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account LIMIT 1")


def test_soap_login_refuses_entity_declarations(emu: Emulator, session: requests.Session) -> None:
    """The body is parsed with defusedxml: an entity (billion laughs, an external file) is a fault, not expanded."""
    info = emu.info
    body = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY u SYSTEM "file:///etc/passwd">]>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Body><urn:login>'
            f'<urn:username>{info["username"]}</urn:username><urn:password>&u;</urn:password>'
            '</urn:login></soapenv:Body></soapenv:Envelope>')
    resp = session.post(f"{info['login_url']}/services/Soap/u/62.0", data=body,
                        headers={"Content-Type": "text/xml", "SOAPAction": "login"}, timeout=10)
    assert resp.status_code == 500
    assert "<faultcode>sf:INVALID_REQUEST</faultcode>" in resp.text
    assert "root:" not in resp.text
