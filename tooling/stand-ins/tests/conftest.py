"""Suite-wide set-up for the stand-ins' own tests: fake AWS credentials and moto, nothing else from the product
(the stand-ins never import functions/ or the layer; tests that need the product live in the product's tests)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_SECURITY_TOKEN": "testing", "AWS_SESSION_TOKEN": "testing",
                   "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1"}.items():
    os.environ[key] = value


@pytest.fixture
def aws() -> Iterator[None]:
    """moto for every AWS service (the logistics bus sink and its EventBridge bus)."""
    from moto import mock_aws

    with mock_aws():
        yield
