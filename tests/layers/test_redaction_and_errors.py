"""Credentials never reach logs or exception messages; error responses become typed exceptions."""

from __future__ import annotations

import io
import json
import logging

import pytest
import requests

from salesforce_access import (
    AuthenticationError,
    NotFound,
    RequestLimitExceeded,
    RowLocked,
    SalesforceError,
    ServiceUnavailable,
    SessionExpired,
    ValidationError,
)
from salesforce_access.auth import AccessToken
from salesforce_access.errors import error_from_response
from salesforce_access.observability import logger
from salesforce_access.redaction import redact, register_secret

from .conftest import log_records


def response(status: int, body, url: str = "https://x.my.salesforce.com/services/data/v59.0/query?q=SELECT+1"):
    resp = requests.Response()
    resp.status_code = status
    resp._content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    resp.url = url
    return resp


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], SessionExpired,
         "INVALID_SESSION_ID"),
        (403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
         RequestLimitExceeded, "REQUEST_LIMIT_EXCEEDED"),
        (503, [{"message": "down", "errorCode": "SERVER_UNAVAILABLE"}], ServiceUnavailable, "SERVER_UNAVAILABLE"),
        (503, "<html>Service Unavailable</html>", ServiceUnavailable, None),
        (400, [{"message": "unable to obtain exclusive access", "errorCode": "UNABLE_TO_LOCK_ROW", "fields": []}],
         RowLocked, "UNABLE_TO_LOCK_ROW"),
        (400, [{"message": "trigger: UNABLE_TO_LOCK_ROW, unable to obtain exclusive access",
                "errorCode": "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"}], RowLocked,
         "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"),
        (404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}], NotFound,
         "NOT_FOUND"),
        (400, [{"message": "Required fields are missing: [Name]", "errorCode": "REQUIRED_FIELD_MISSING",
                "fields": ["Name"]}], ValidationError, "REQUIRED_FIELD_MISSING"),
        (500, [{"message": "boom", "errorCode": "UNKNOWN_EXCEPTION"}], SalesforceError, "UNKNOWN_EXCEPTION"),
    ],
)
def test_error_responses_map_to_typed_exceptions(status, body, cls, code) -> None:
    error = error_from_response(response(status, body), "GET")
    assert type(error) is cls
    assert error.status == status
    assert error.error_code == code
    assert error.path == "/services/data/v59.0/query"
    assert "SELECT" not in str(error)  # the query string (user data) is not repeated


def test_fields_and_message_are_carried() -> None:
    error = error_from_response(
        response(400, [{"message": "Required fields are missing: [Name]", "errorCode": "REQUIRED_FIELD_MISSING",
                        "fields": ["Name"]}]), "POST")
    assert error.fields == ["Name"]
    assert error.message == "Required fields are missing: [Name]"
    assert "REQUIRED_FIELD_MISSING" in str(error)
    assert "fields: Name" in str(error)


def test_registered_secrets_and_credential_shapes_are_masked() -> None:
    register_secret("registered-secret-value-123")
    text = redact(
        "x registered-secret-value-123 y | Authorization: Bearer 00DxR0000001abc!AQ4AQH0Yd9M51BU_abcdef "
        "| client_secret=ABCDEF0123456789&grant_type=password | {\"password\": \"hunter22\"} "
        "| -----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----"
    )
    for secret in ("registered-secret-value-123", "AQ4AQH0Yd9M51BU", "ABCDEF0123456789", "hunter22", "MIIEvQ"):
        assert secret not in text
    assert "grant_type=password" in text
    # ordinary prose is left alone
    assert redact("The OAuth username-password flow is deprecated") == "The OAuth username-password flow is deprecated"


def test_exceptions_redact_their_messages() -> None:
    register_secret("leaky-token-value-987654")
    error = SalesforceError("Salesforce said: leaky-token-value-987654")
    assert "leaky-token-value-987654" not in str(error)
    auth = AuthenticationError("invalid_grant", "bad assertion leaky-token-value-987654")
    assert "leaky-token-value-987654" not in str(auth)
    assert auth.error == "invalid_grant"


def test_access_token_repr_hides_the_value() -> None:
    token = AccessToken(value="00D000000000001!SECRETSECRETSECRET", instance_url="https://x")
    assert "SECRETSECRET" not in repr(token)


def test_log_records_are_redacted_field_by_field(layer_logs: io.StringIO) -> None:
    register_secret("multi\nline\nsecret-value-xyz")
    logger.info("token is 00D000000000001!ABCDEFGHIJKLMNOPQRSTUV",
                extra={"detail": {"nested": ["secret-value-xyz"]}, "header": "Bearer abcdefghij0123456789"})
    records = [r for r in log_records(layer_logs) if r["message"].startswith("token is")]
    assert len(records) == 1
    dumped = json.dumps(records[0])
    assert "ABCDEFGHIJKLMNOPQRSTUV" not in dumped
    assert "secret-value-xyz" not in dumped
    assert "abcdefghij0123456789" not in dumped
    assert logging.getLogger(logger.name).level == logging.DEBUG


def test_redaction_holds_when_another_logger_configured_the_service_first(layer_logs: io.StringIO) -> None:
    # A function's own Powertools Logger with the same service name shares the stdlib logger; whichever
    # was created first keeps its (non-redacting) formatter, so the layer also filters the records.
    plain = io.StringIO()
    handler = logging.StreamHandler(plain)
    handler.setFormatter(logging.Formatter("%(message)s %(detail)s"))
    logging.getLogger(logger.name).addHandler(handler)
    try:
        register_secret("another-secret-value-42")
        logger.info("value %s", "another-secret-value-42", extra={"detail": "Bearer zyxwvu9876543210abc"})
    finally:
        logging.getLogger(logger.name).removeHandler(handler)
    assert "another-secret-value-42" not in plain.getvalue()
    assert "zyxwvu9876543210abc" not in plain.getvalue()
    assert "value ***" in plain.getvalue()
