"""Suite-wide set-up: nothing reaches real AWS, and the layer imports as Lambda would import it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lambda puts a layer's python/ folder on sys.path; SAM builds ours from layers/salesforce_access.
sys.path.insert(0, str(ROOT / "layers" / "salesforce_access"))

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
