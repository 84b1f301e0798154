"""The domain of the consumer: bill a signed contract once, then tell Salesforce. No AWS here.

`open_account` is the idempotent billing call (the handler wraps the billing adapter with Powertools
idempotency keyed on the contract id), `contracts` the Salesforce callback port.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from billing_consumer.errors import BillingRejected, BillingUnavailable, ProcessingFailure
from billing_consumer.models import BillingAccount, ContractSigned
from billing_consumer.salesforce import ACTIVE, FAILED
from salesforce_access.observability import logger


class ContractStatusPort(Protocol):
    def record_billing(self, contract_id: str, status: str, account_number: str | None = None) -> None: ...


class BillingService:
    """One per invocation: after billing fails as unavailable, the rest of the batch is not sent to it."""

    def __init__(self, open_account: Callable[[ContractSigned], BillingAccount], contracts: ContractStatusPort):
        self._open_account = open_account
        self._contracts = contracts
        self._billing_down: str | None = None

    def process(self, contract: ContractSigned) -> BillingAccount:
        if self._billing_down is not None:
            raise BillingUnavailable(f"not sent: {self._billing_down} earlier in this batch")
        try:
            account = self._open_account(contract)
        except BillingUnavailable as exc:
            self._billing_down = str(exc)
            raise
        except BillingRejected as exc:
            self._mark_failed(contract, exc)
            raise
        self._contracts.record_billing(contract.contract_id, ACTIVE, account.account_number)
        return account

    def _mark_failed(self, contract: ContractSigned, cause: BillingRejected) -> None:
        """Best effort: the message goes to the DLQ anyway, the Contract shows Failed when Salesforce lets us."""
        try:
            self._contracts.record_billing(contract.contract_id, FAILED)
        except ProcessingFailure as exc:
            logger.warning("could not mark the Contract as Failed", extra={
                "contract_id": contract.contract_id, "billing_error": str(cause), "callback_error": str(exc)})
