"""Importing the shared observability module alone keeps Secrets Manager values out of botocore's logs."""

from __future__ import annotations

import logging

import pytest

import salesforce_access.observability  # noqa: F401 - the import is what installs the filter


@pytest.mark.parametrize("name", ["botocore.parsers", "botocore.endpoint"])
def test_botocore_bodies_with_a_secret_are_withheld(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=name)
    logging.getLogger(name).debug("Response body: %s", b'{"SecretString": "erp-key-123", "Name": "erp"}')
    logging.getLogger(name).debug("Response body: %s", b'{"QueueUrl": "https://sqs/q"}')
    assert "erp-key-123" not in caplog.text
    assert "body withheld by salesforce_access" in caplog.text
    assert "QueueUrl" in caplog.text  # bodies without a secret are left alone
