"""The suite-wide secret scan (log_scan.py) fails a test that leaks, and only such a test.

The leaking tests run in a separate pytest (pytester), so this suite stays green while they fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.security.log_scan import Secrets

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

LEAKY_TESTS = '''
import json
import logging
import sys
from pathlib import Path

import boto3
import pytest
import requests
from aws_lambda_powertools import Logger
from moto import mock_aws

from stand_ins.erp import ErpServer
from salesforce_emulator import Emulator

log = logging.getLogger("leaky")
powertools = Logger(service="leaky-service")  # created at import: writes to the stdout pytest captures


@pytest.fixture(scope="module")
def emu():
    with Emulator() as emulator:
        yield emulator


def token(emu) -> str:
    info = emu.info
    answer = requests.post(f"{info['login_url']}/services/oauth2/token", verify=info["ca_bundle"], timeout=10, data={
        "grant_type": "password", "client_id": info["client_id"], "client_secret": info["client_secret"],
        "username": info["username"], "password": info["password"]})
    answer.raise_for_status()
    return answer.json()["access_token"]


def test_debug_log_of_the_client_secret(emu):
    log.debug("connecting with %s", emu.info["client_secret"])


def test_powertools_line_with_a_token_read_back_through_capsys(emu, capsys):
    own = Logger(service="leaky-capsys", stream=sys.stdout)  # writes to capsys, which the test then empties
    own.info("session ready", extra={"auth": f"Bearer {token(emu)}"})
    assert "session ready" in capsys.readouterr().out


def test_print_of_a_private_key_line(emu):
    print(Path(emu.info["private_key_file"]).read_text().splitlines()[3])


def test_warning_with_a_stored_secret():
    with mock_aws():
        boto3.client("secretsmanager").create_secret(
            Name="erp/api-key", SecretString=json.dumps({"api_key": "erp-key-0123456789", "client_id": "erp-client-1"}))
        log.warning("ERP refused key %s", "erp-key-0123456789")


def test_exception_text_with_the_erp_key():
    with ErpServer(api_key="erp-stand-in-key-42") as erp:
        try:
            raise RuntimeError(f"ERP at {erp.url} refused erp-stand-in-key-42")
        except RuntimeError:
            log.exception("ERP call failed")


@pytest.fixture
def leaks_at_teardown(emu):
    yield
    log.info("admin password is %s", emu.info["admin_password"])


def test_leak_in_teardown(leaks_at_teardown):
    pass


def test_identifiers_urls_and_busy_logs_are_not_secrets(emu):
    """The same emulator and secret, used the way real code does, logging what may be logged."""
    logging.getLogger().setLevel(logging.DEBUG)
    with mock_aws():
        boto3.client("secretsmanager").create_secret(
            Name="sf", SecretString=json.dumps({"client_id": emu.info["client_id"], "username": "integration@x.y",
                                               "client_secret": emu.info["client_secret"]}))
        value = boto3.client("secretsmanager").get_secret_value(SecretId="sf")["SecretString"]
    access = token(emu)
    requests.get(f"{emu.info['instance_url']}/services/data/v62.0/limits", verify=emu.info["ca_bundle"],
                 headers={"Authorization": f"Bearer {access}"}, timeout=10).raise_for_status()
    log.info("client %s as %s on %s, token %s...", emu.info["client_id"], emu.info["username"],
             emu.info["login_url"], access[:12])
    powertools.info("secret read", extra={"keys": sorted(json.loads(value))})
    print("token length", len(access))


@pytest.mark.prints_credentials("the start-up line of a local tool shows its credentials on purpose")
def test_a_marked_test_may_print_credentials(emu):
    print(json.dumps(emu.info))
'''


@pytest.fixture
def leaky(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    return pytester.runpytest_subprocess("-p", "tests.security.log_scan", "-p", "no:cacheprovider", "-rA",
                                         timeout=120)


def test_each_kind_of_leak_fails_its_test_and_nothing_else(leaky: pytest.RunResult) -> None:
    leaky.assert_outcomes(passed=3, failed=5, errors=1)
    out = leaky.stdout.str()
    failed = {line.split(" ")[1].split("::")[1] for line in leaky.stdout.lines if line.startswith("FAILED ")}
    assert failed == {"test_debug_log_of_the_client_secret",
                      "test_powertools_line_with_a_token_read_back_through_capsys", "test_print_of_a_private_key_line",
                      "test_warning_with_a_stored_secret", "test_exception_text_with_the_erp_key"}
    assert any(line.startswith("ERROR test_leaky.py::test_leak_in_teardown") for line in leaky.stdout.lines)
    for what in ["Salesforce emulator client_secret", "Salesforce access token",
                 "Salesforce emulator jwt_private_key (line 4)", "Secrets Manager secret 'erp/api-key' [api_key]",
                 "ERP API key"]:
        assert f"secret scan: the call phase logged or printed 1 known secret(s): {what} (" in out
    assert "secret scan: the teardown phase logged or printed 1 known secret(s): Salesforce emulator admin_password" \
        in out
    passed = {line.split(" ")[1].split("::")[1] for line in leaky.stdout.lines if line.startswith("PASSED ")}
    assert passed == {"test_identifiers_urls_and_busy_logs_are_not_secrets", "test_a_marked_test_may_print_credentials",
                      "test_leak_in_teardown"}  # its call phase; the teardown is the error


def test_secret_documents_keep_identifiers_out_and_split_keys_into_lines() -> None:
    secrets = Secrets()
    key = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQDJ\n"
           "-----END PRIVATE KEY-----\n")
    secrets.add_document(json.dumps({"flow": "jwt_bearer", "client_id": "3MVG9-client-id", "username": "a@b.c",
                                     "login_url": "https://login.example.com", "private_key": key,
                                     "nested": {"current": "current-signing-key", "previous": "short"}}), "sf")
    secrets.add_document("plain-erp-api-key", "erp")
    assert secrets.values == {"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC": "sf [private_key] (line 2)",
                              "BKcwggSjAgEAAoIBAQDJ": "sf [private_key] (line 3)",
                              "current-signing-key": "sf [current]", "plain-erp-api-key": "erp"}
    assert secrets.find("calling https://login.example.com as a@b.c with 3MVG9-client-id") == []
    assert secrets.find("key=plain-erp-api-key;") == ["erp"]


def test_tokens_are_found_by_shape_even_inside_other_text() -> None:
    secrets = Secrets()
    token = "00D000000000001!" + "A" * 40 + "_-" + "b" * 54
    secrets.add(token, "access token")
    secrets.add("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl", "assertion")
    assert secrets.values == {}
    assert secrets.find(f'{{"Authorization": "Bearer {token}"}}') == ["access token"]
    assert secrets.find(f"Bearer {token}xyz") == ["access token"]  # runs on into other characters
    assert secrets.find(f"Bearer {token[:-1]}") == []  # a truncated token is not the token
    assert secrets.find("assertion=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl&x=1") == ["assertion"]
