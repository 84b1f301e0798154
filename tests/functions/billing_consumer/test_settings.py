"""The consumer's settings: the variables template.yaml sets, validated at once, named but never echoed."""

from __future__ import annotations

import pytest
from billing_consumer.settings import DEFAULT_IDEMPOTENCY_TTL, Settings

from edge_kit.settings import ConfigurationError

REQUIRED = {"BILLING_API_URL": "https://billing.example.com/api", "CONTRACTS_DLQ_URL": "https://sqs/dlq",
            "IDEMPOTENCY_TABLE_NAME": "state"}


def test_defaults_match_the_documented_ones():
    settings = Settings.from_environment(REQUIRED)
    assert (settings.billing_connect_timeout, settings.billing_read_timeout) == (2.0, 5.0)
    assert (settings.retry_base_seconds, settings.retry_max_seconds) == (30, 900)
    assert settings.idempotency_ttl == DEFAULT_IDEMPOTENCY_TTL
    billing = settings.billing
    assert (billing.base_url, billing.connect_timeout, billing.read_timeout) == (REQUIRED["BILLING_API_URL"], 2.0, 5.0)


def test_every_missing_or_invalid_variable_is_named_and_no_value_is_echoed():
    environ = {"CONTRACTS_DLQ_URL": "https://sqs/dlq", "BILLING_READ_TIMEOUT": "soon-ish", "RETRY_MAX_SECONDS": "-1"}
    with pytest.raises(ConfigurationError) as info:
        Settings.from_environment(environ)
    message = str(info.value)
    for name in ("BILLING_API_URL", "IDEMPOTENCY_TABLE_NAME", "BILLING_READ_TIMEOUT", "RETRY_MAX_SECONDS"):
        assert name in message
    assert "soon-ish" not in message
    assert "CONTRACTS_DLQ_URL" not in message
