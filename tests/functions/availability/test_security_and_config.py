"""The ERP key comes from Secrets Manager, is refreshed once when the ERP rejects it, and never appears in a
log line or an answer; bad settings are a JSON 500; the sample events work; no Salesforce code is loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3

from .conftest import ERP_KEY, api_event

ROOT = Path(__file__).resolve().parents[3]
ONE = "/products/SKU-1001/availability"


def test_the_key_is_sent_and_never_logged_or_answered(invoke, erp, log_output, capsys):
    assert invoke("GET", ONE).status == 200
    erp.inject("500")
    failed = invoke("GET", ONE)
    logged = log_output.getvalue() + capsys.readouterr().out
    assert failed.status == 502
    assert '"message":"availability answered"' in logged  # the log is really captured
    assert '"code":"ERP_BAD_RESPONSE"' in logged
    assert ERP_KEY not in logged
    assert ERP_KEY not in json.dumps(failed.body)


def test_a_rotated_key_is_fetched_again_after_a_401(invoke, erp, secret_arn):
    assert invoke("GET", ONE).status == 200  # the old key is now cached in the container
    boto3.client("secretsmanager").put_secret_value(SecretId=secret_arn, SecretString="rotated-key-1234")
    erp.app.api_key = "rotated-key-1234"
    try:
        assert invoke("GET", ONE).status == 200
        statuses = [entry["status"] for entry in erp.requests()]
        assert statuses == [200, 401, 200]
    finally:
        erp.app.api_key = ERP_KEY


def test_a_rejected_key_is_a_502_that_names_no_secret(invoke, erp, log_output):
    erp.app.api_key = "some-other-key"
    try:
        reply = invoke("GET", ONE)
    finally:
        erp.app.api_key = ERP_KEY
    assert (reply.status, reply.body["error"]) == (502, "ERP_BAD_RESPONSE")
    assert "credentials" in reply.body["message"]
    output = log_output.getvalue()
    assert "ERP failure" in output
    assert ERP_KEY not in output
    assert "some-other-key" not in output


def test_missing_erp_url_is_a_json_500_and_a_log_line_naming_the_variable(invoke, configure, monkeypatch,
                                                                           log_output):
    monkeypatch.delenv("ERP_BASE_URL")
    reply = invoke("GET", ONE)
    assert (reply.status, reply.body["error"]) == (500, "CONFIGURATION_ERROR")
    assert "ERP_BASE_URL" in log_output.getvalue()


def test_invalid_timeout_setting_is_reported(invoke, configure, log_output):
    configure(ERP_READ_TIMEOUT_SECONDS="fast")
    assert invoke("GET", ONE).body["error"] == "CONFIGURATION_ERROR"
    assert "ERP_READ_TIMEOUT_SECONDS" in log_output.getvalue()


def test_sample_events_run_against_the_stand_in(configure, handler_module, lambda_context):
    expected = {"availability-get-one.json": 200, "availability-post-many.json": 200,
                "availability-get-invalid-quantity.json": 400}
    assert {p.name for p in (ROOT / "events").glob("availability-*.json")} == set(expected)
    for name, status in expected.items():
        event = json.loads((ROOT / "events" / name).read_text())
        response = handler_module.handler(event, lambda_context)
        assert response["statusCode"] == status, name
        assert "error" in json.loads(response["body"]) or status == 200


def test_the_test_event_builder_matches_the_sample_events():
    sample = json.loads((ROOT / "events" / "availability-get-one.json").read_text())
    built = api_event("GET", "/products/SKU-1001/availability", query={"quantity": "25"})
    for key in ("resource", "path", "httpMethod", "pathParameters", "queryStringParameters"):
        assert built[key] == sample[key], key


def test_importing_the_handler_loads_no_salesforce_code():
    """It logs through the layer's shared observability module, and loads nothing else of Salesforce's."""
    code = ("import sys; sys.path[:0] = ['functions/availability', 'layers/salesforce_access'];"
            "import availability.handler;"
            "loaded = [m for m in sys.modules if m.startswith(('simple_salesforce', 'salesforce_access', 'boto3',"
            " 'jwt', 'cryptography'))];"
            "print(sorted(loaded))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=True)
    # budget: the edge kit's timeouts, backoff and deadline types (stdlib only, no Salesforce code)
    assert result.stdout.strip() == str(["salesforce_access", "salesforce_access.budget",
                                         "salesforce_access.observability", "salesforce_access.redaction"])
