"""The secret: one JSON document per org, read through Powertools Parameters, validated per flow."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from salesforce_access import (
    ClientCredentialsSecret,
    ConfigurationError,
    JwtBearerSecret,
    SalesforceAccess,
    UsernamePasswordSecret,
    load_secret,
    parse_secret,
)

CLIENT_SECRET = "Sup3rS3cretClientValue-XYZ"
PASSWORD = "Pa55word-Very-Private"


def pem_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def jwt_doc(**overrides: Any) -> dict[str, Any]:
    doc = {"flow": "jwt_bearer", "client_id": "3MVG9abc", "username": "int@example.com",
           "private_key": pem_key(), "login_url": "https://acme.my.salesforce.com/"}
    doc.update(overrides)
    return doc


def test_each_flow_parses_into_its_model() -> None:
    jwt = parse_secret(jwt_doc())
    assert isinstance(jwt, JwtBearerSecret)
    assert jwt.login_url == "https://acme.my.salesforce.com"  # trailing slash dropped
    assert jwt.api_version == "62.0"  # the default: salesforce/sfdx-project.json's sourceApiVersion
    cc = parse_secret({"flow": "client_credentials", "client_id": "id", "client_secret": CLIENT_SECRET,
                       "login_url": "https://acme.my.salesforce.com"})
    assert isinstance(cc, ClientCredentialsSecret)
    up = parse_secret(json.dumps({"flow": "username_password", "client_id": "id", "client_secret": CLIENT_SECRET,
                                  "username": "u@example.com", "password": PASSWORD}))
    assert isinstance(up, UsernamePasswordSecret)
    assert up.login_url == "https://login.salesforce.com"


def test_models_never_show_secret_values() -> None:
    secret = parse_secret({"flow": "username_password", "client_id": "id", "client_secret": CLIENT_SECRET,
                           "username": "u@example.com", "password": PASSWORD})
    for text in (repr(secret), str(secret), secret.model_dump_json()):
        assert CLIENT_SECRET not in text
        assert PASSWORD not in text


def test_missing_field_is_named() -> None:
    doc = jwt_doc()
    del doc["private_key"]
    with pytest.raises(ConfigurationError) as info:
        parse_secret(doc)
    assert "private_key" in str(info.value)
    assert "missing" in str(info.value)


def test_malformed_values_are_named_but_not_echoed() -> None:
    bad_url = f"http://acme.example.com/?token={CLIENT_SECRET}"
    doc = {"flow": "client_credentials", "client_id": "id", "client_secret": 12345, "login_url": bad_url}
    with pytest.raises(ConfigurationError) as info:
        parse_secret(doc)
    message = str(info.value)
    assert "login_url" in message
    assert "client_secret" in message
    assert CLIENT_SECRET not in message
    assert "12345" not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_invalid_private_key_is_reported_without_its_content() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_secret(jwt_doc(private_key=f"not a key {PASSWORD}"))
    assert "private_key" in str(info.value)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"client_id": "x"}, "flow"),
        ({"flow": "saml", "client_id": "x"}, "flow"),
        ({"flow": "jwt_bearer", "client_id": "", "username": "u", "private_key": "-----BEGIN PRIVATE KEY-----"},
         "client_id"),
        ({"flow": "jwt_bearer", "client_id": "x", "username": "u", "private_key": "-----BEGIN PRIVATE KEY-----",
          "api_version": "v59"}, "api_version"),
    ],
)
def test_each_problem_names_its_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        parse_secret(document)


def test_client_credentials_refuses_the_generic_login_host() -> None:
    with pytest.raises(ConfigurationError, match="My Domain"):
        parse_secret({"flow": "client_credentials", "client_id": "id", "client_secret": CLIENT_SECRET,
                      "login_url": "https://login.salesforce.com"})


def test_doubly_escaped_pem_newlines_are_repaired() -> None:
    key = pem_key()
    secret = parse_secret(jwt_doc(private_key=key.replace("\n", "\\n")))
    assert secret.private_key.get_secret_value() == key


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"a string"'])
def test_non_object_documents_are_rejected_without_echo(raw: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_secret(raw)
    assert raw not in str(info.value)


def test_load_secret_reads_secrets_manager_and_caches(put_secret, secretsmanager) -> None:
    doc = jwt_doc()
    arn = put_secret(doc)
    first = load_secret(arn, max_age=300)
    assert isinstance(first, JwtBearerSecret)
    assert first.username == "int@example.com"

    secretsmanager.put_secret_value(SecretId=arn, SecretString=json.dumps(jwt_doc(username="new@example.com")))
    assert load_secret(arn, max_age=300).username == "int@example.com"  # served from the cache
    assert load_secret(arn, max_age=300, force_fetch=True).username == "new@example.com"


def test_unreadable_secret_fails_with_its_id(secretsmanager) -> None:
    with pytest.raises(ConfigurationError, match="salesforce/missing"):
        load_secret("salesforce/missing")


def test_malformed_secret_fails_at_first_use_not_at_creation(put_secret) -> None:
    arn = put_secret({"flow": "jwt_bearer", "client_id": "x", "username": "u", "private_key": PASSWORD})
    access = SalesforceAccess(arn)  # nothing read yet
    with pytest.raises(ConfigurationError) as info:
        access.request("GET", "limits")
    assert "private_key" in str(info.value)
    assert PASSWORD not in str(info.value)
