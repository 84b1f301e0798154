"""A deployed function is configured only by its environment: the secret's ARN (and, locally, a CA bundle)."""

from __future__ import annotations

from salesforce_access import get_access


def test_get_access_reaches_salesforce_from_the_environment_alone(salesforce, lambda_context) -> None:
    access = get_access().bind(lambda_context)
    rows = list(access.query("SELECT Id FROM User WHERE Username = 'integration@example.com'"))
    assert len(rows) == 1
    tokens = [r for r in salesforce.requests() if r["path"] == "/services/oauth2/token"]
    assert len(tokens) == 1
    # a warm invocation reuses the token
    list(get_access().bind(lambda_context).query("SELECT Id FROM User LIMIT 1"))
    assert len([r for r in salesforce.requests() if r["path"] == "/services/oauth2/token"]) == 1
