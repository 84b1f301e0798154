"""The one exception type every emulator module raises for a Salesforce-style error response."""

from __future__ import annotations


class ApiError(Exception):
    """An error Salesforce would report: HTTP status, errorCode, message and the fields concerned.

    Single-record REST resources render it as ``[{"message", "errorCode", "fields"}]``; sObject
    Collections, Composite and Bulk results render the same data in their own envelopes.
    """

    def __init__(self, status: int, error_code: str, message: str, fields: list[str] | None = None):
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = list(fields or [])

    def body(self) -> list[dict]:
        """The REST error envelope (a JSON list, which simple-salesforce indexes with [0])."""
        return [{"message": self.message, "errorCode": self.error_code, "fields": self.fields}]

    def collection_error(self) -> dict:
        """The sObject Collections / Tree / Bulk envelope, which says statusCode instead of errorCode."""
        return {"statusCode": self.error_code, "message": self.message, "fields": self.fields}


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def malformed_query(message: str) -> ApiError:
    return ApiError(400, "MALFORMED_QUERY", message)
