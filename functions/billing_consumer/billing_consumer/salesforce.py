"""Adapter for the callback: the billing outcome written to the Contract through the shared layer.

`salesforce_access` is imported on the first callback, not at module load, so a cold start that never
reaches Salesforce (a malformed message, billing down) pays for neither the layer's HTTP stack nor the
token fetch. The layer never imports simple-salesforce for a plain REST PATCH.
"""

from __future__ import annotations

from typing import Any

from billing_consumer.errors import ContractUpdateRejected, SalesforceUnavailable

ACCOUNT_NUMBER_FIELD = "Billing_Account_Number__c"
STATUS_FIELD = "Billing_Status__c"
ACTIVE = "Active"
FAILED = "Failed"


class SalesforceContracts:
    """Writes Billing_Account_Number__c and Billing_Status__c; the layer retries 503s, lock errors and 401s."""

    def __init__(self, context: Any):
        self._context = context

    def record_billing(self, contract_id: str, status: str, account_number: str | None = None) -> None:
        from salesforce_access import NotFound, SalesforceError, ValidationError, get_access

        fields: dict[str, Any] = {STATUS_FIELD: status}
        if account_number is not None:
            fields[ACCOUNT_NUMBER_FIELD] = account_number
        try:
            # PATCH of the same values is idempotent, so the layer may replay it after a timeout.
            get_access().bind(self._context).request("PATCH", f"sobjects/Contract/{contract_id}", json=fields,
                                                     idempotent=True)
        except (NotFound, ValidationError) as exc:
            raise ContractUpdateRejected(f"Salesforce refused the Contract update: {exc}") from None
        except SalesforceError as exc:
            # 503/lock/timeouts after the layer's own retries, the API allocation, authentication: all may
            # clear later; if they do not, maxReceiveCount moves the message to the DLQ.
            raise SalesforceUnavailable(f"Salesforce unavailable for the Contract update: {exc}") from None
