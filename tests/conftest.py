"""Suite-wide set-up: nothing reaches real AWS, and code imports as Lambda would import it."""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lambda puts a layer's python/ folder and the function's CodeUri on sys.path; SAM builds the layer
# from layers/salesforce_access and each function from functions/<name>/, whose package
# (functions/<name>/<name>/) holds the handler. Package names are unique, so all can share one path.
sys.path.insert(0, str(ROOT / "layers" / "salesforce_access"))
for function_dir in sorted((ROOT / "functions").glob("*/")):
    sys.path.insert(0, str(function_dir))

# Fake credentials and region before anything builds a boto3 client (moto's "pesky imports" warning).
for key, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "SalesforceIntegration",
    "POWERTOOLS_SERVICE_NAME": "tests",
}.items():
    os.environ[key] = value


@dataclass
class LambdaContext:
    """The parts of the Lambda context object that Powertools and our handlers read."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


# -- shared fixtures for function tests: moto, the Salesforce emulator and the layer's secret --------

@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    """moto for every AWS service, with Powertools' parameter caches and the layer's cache emptied."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
    from moto import mock_aws

    from salesforce_access import reset_access_cache

    with mock_aws():
        parameters.clear_caches()
        DEFAULT_PROVIDERS.clear()
        reset_access_cache()
        yield
        parameters.clear_caches()
        DEFAULT_PROVIDERS.clear()
        reset_access_cache()


@pytest.fixture(scope="session")
def salesforce_emulator():
    """One emulator for the session; tests reset what they rely on through `salesforce`."""
    from salesforce_emulator import Emulator

    with Emulator() as emu:
        yield emu


@pytest.fixture
def salesforce(salesforce_emulator, aws, monkeypatch: pytest.MonkeyPatch):
    """The emulator, reachable through the layer exactly as a deployed function reaches Salesforce.

    A JWT-bearer secret for the emulator is stored in (moto) Secrets Manager and named by
    SALESFORCE_SECRET_ARN; SALESFORCE_CA_BUNDLE makes the layer trust the emulator's certificate.
    """
    import json

    import boto3

    emu = salesforce_emulator
    emu.clear_faults()
    emu.clear_requests()
    emu.set_api_usage(0, 1_000_000)
    info = emu.info
    secret = {"flow": "jwt_bearer", "client_id": info["client_id"], "username": info["username"],
              "private_key": Path(info["private_key_file"]).read_text(), "login_url": info["login_url"],
              "api_version": info["api_version"]}
    arn = boto3.client("secretsmanager").create_secret(Name="salesforce/test-org",
                                                       SecretString=json.dumps(secret))["ARN"]
    monkeypatch.setenv("SALESFORCE_SECRET_ARN", arn)
    monkeypatch.setenv("SALESFORCE_CA_BUNDLE", info["ca_bundle"])
    yield emu
    emu.clear_faults()


# -- suite-wide secret scan --------------------------------------------------------------------------
# A test fails if a known secret (the emulator's credentials and tokens, any value stored in Secrets Manager,
# the stand-ins' keys) appears in what it logged or printed: tests/security/log_scan.py.
pytest_plugins = ["tests.security.log_scan"]
