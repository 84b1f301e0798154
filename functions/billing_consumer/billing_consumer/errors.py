"""Failure classes that decide a message's fate: permanent ones go to the DLQ at once, transient ones are
retried with backoff. Each carries a short machine-readable `reason` (a metric name, a DLQ attribute)."""

from __future__ import annotations


class ProcessingFailure(Exception):
    reason = "failed"

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class PermanentFailure(ProcessingFailure):
    """Retrying cannot help (a malformed message, a refusal by billing, a contract that does not exist)."""


class TransientFailure(ProcessingFailure):
    """Retrying later may help (billing or Salesforce unavailable, a concurrent delivery in progress)."""


class InvalidMessage(PermanentFailure):
    reason = "invalid_message"


class BillingRejected(PermanentFailure):
    """Billing answered 4xx: the request itself is wrong for billing."""

    reason = "billing_rejected"

    def __init__(self, message: str, *, status: int, error: str | None = None):
        super().__init__(message)
        self.status = status
        self.error = error


class BillingUnavailable(TransientFailure):
    reason = "billing_unavailable"


class ContractUpdateRejected(PermanentFailure):
    """Salesforce refused the callback (the Contract is gone, or a field value is not accepted)."""

    reason = "callback_rejected"


class SalesforceUnavailable(TransientFailure):
    reason = "salesforce_unavailable"
