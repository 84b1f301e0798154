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
