"""A busy session at DEBUG level, then a scan of every log line and exception for credentials."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from salesforce_access import RetryPolicy, SalesforceError

from .conftest import credential_values, log_records, secret_document, seen_tokens


def test_no_credential_in_logs_or_exceptions(make_access, emu, layer_logs, caplog) -> None:
    errors: list[str] = []

    def expect_error(call) -> None:
        with pytest.raises(SalesforceError) as info:
            call()
        errors.append(str(info.value))
        errors.append(repr(info.value))

    for flow in ("jwt_bearer", "client_credentials", "username_password"):
        access = make_access(flow, retry=RetryPolicy(base_delay=0.01, max_delay=0.02, max_attempts=2))
        account = access.request("POST", "sobjects/Account", json={"Name": f"Scan {flow}"})["id"]
        emu.expire_tokens()
        access.client.Account.update(account, {"Phone": "1"})
        emu.inject("503", count=5, path=r"/limits")
        expect_error(lambda a=access: a.request("GET", "limits"))
        emu.inject("REQUEST_LIMIT_EXCEEDED", count=1)
        expect_error(lambda a=access: a.request("GET", "limits"))
        emu.inject("INVALID_SESSION_ID", count=2, path=r"/sobjects/")
        expect_error(lambda a=access, i=account: a.request("GET", f"sobjects/Account/{i}"))
        expect_error(lambda a=access: a.request("GET", "sobjects/Account/001000000000000AAA"))
        expect_error(lambda a=access: a.request("POST", "sobjects/Account", json={}))
        list(access.bulk.query("SELECT Id FROM Account LIMIT 5"))
        errors.append(repr(access.tokens.peek()))

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    refused = make_access(secret=secret_document(emu.info, "jwt_bearer", private_key=other_key))
    expect_error(lambda: refused.request("GET", "limits"))

    # the scan is not vacuous: the layer did log retries, re-authentications and token requests
    messages = [r["message"] for r in log_records(layer_logs)]
    assert any("retrying" in m for m in messages)
    assert any("re-authenticating" in m for m in messages)
    assert sum("Obtained Salesforce access token" in m for m in messages) >= 6
    assert len(seen_tokens()) >= 9  # tokens and JWT assertions recorded for the scan

    captured = "\n".join([layer_logs.getvalue(), caplog.text, *errors])
    for value in [*credential_values(emu.info), other_key, *other_key.splitlines()[1:-1]]:
        assert value not in captured
