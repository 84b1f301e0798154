"""Application: each contract record's fate (billed, dead-lettered for good, or retried with backoff).

Why permanent failures are sent to the DLQ by the function itself (and reported as processed) rather than
left to the queue's redrive policy: maxReceiveCount is one number for the whole queue, and it must stay high
enough for billing outages to be retried; a message that can never succeed would otherwise be retried that
many times, calling billing each time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from botocore.config import Config

from billing_consumer.billing import BillingClient
from billing_consumer.errors import PermanentFailure, TransientFailure
from billing_consumer.models import BillingAccount, ContractSigned, parse_message
from billing_consumer.salesforce import SalesforceContracts
from billing_consumer.service import BillingService
from billing_consumer.settings import Settings
from edge_kit.sqs import DeadLetterReason, clear_queue_urls, dead_letter, postpone, redelivery_delay
from salesforce_access.observability import logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_sqs import SQSClient

IDEMPOTENCY_KEY_PREFIX = "billing-account"
CALLBACK_RESERVE_SECONDS = 5.0  # kept for the Salesforce callback after the slowest billing call
AWS_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


class NotDeadLettered(RuntimeError):
    """The DLQ did not take a permanently failed message: it stays on the queue (retried, never lost)."""


@dataclass(frozen=True)
class Dependencies:
    settings: Settings
    sqs: SQSClient
    idempotency: IdempotencyConfig
    open_account: Callable[[ContractSigned], BillingAccount]


def _on_replay(response: Any, idempotent_data: DataRecord) -> Any:
    """Powertools calls this when the result comes from the idempotency store: a duplicate delivery."""
    metrics.add_metric(name="DuplicateDeliveries", unit=MetricUnit.Count, value=1)
    return response


@functools.cache
def dependencies() -> Dependencies:
    """Clients and settings, built on the first invocation (not at import: tests start moto first)."""
    settings = Settings.from_environment()
    billing = BillingClient(settings.billing)
    idempotency = IdempotencyConfig(event_key_jmespath="contract_id", expires_after_seconds=settings.idempotency_ttl,
                                    raise_on_no_idempotency_key=True, response_hook=_on_replay)
    store = DynamoDBPersistenceLayer(table_name=settings.idempotency_table,
                                     boto3_client=boto3.client("dynamodb", config=AWS_CONFIG))

    @idempotent_function(data_keyword_argument="contract", persistence_store=store, config=idempotency,
                         key_prefix=IDEMPOTENCY_KEY_PREFIX)
    def open_account_once(contract: dict[str, Any]) -> dict[str, Any]:
        return billing.open_account(ContractSigned.model_validate(contract)).model_dump()

    def open_account(contract: ContractSigned) -> BillingAccount:
        try:
            # Only the billing fields and the source are hashed/stored, keyed on contract_id alone.
            return BillingAccount.model_validate(open_account_once(contract=contract.model_dump(mode="json")))
        except IdempotencyAlreadyInProgressError:
            raise TransientFailure("another delivery of this contract is being processed",
                                   reason="in_progress") from None
        except IdempotencyPersistenceLayerError as exc:
            raise TransientFailure(f"idempotency store unavailable: {type(exc).__name__}",
                                   reason="state_unavailable") from None

    return Dependencies(settings, boto3.client("sqs", config=AWS_CONFIG), idempotency, open_account)


def reset() -> None:
    """Forget clients, settings and queue URLs (tests and benchmarks that change the environment)."""
    dependencies.cache_clear()
    clear_queue_urls()


class ContractConsumer:
    """The record handler of one invocation: BatchProcessor calls it once per record."""

    def __init__(self, deps: Dependencies, context: LambdaContext):
        self.deps = deps
        self.context = context
        self.service = BillingService(deps.open_account, SalesforceContracts(context))
        self.min_remaining_ms = int((deps.settings.billing.worst_case_seconds + CALLBACK_RESERVE_SECONDS) * 1000)

    def __call__(self, record: SQSRecord) -> None:
        log: dict[str, Any] = {"message_id": record.message_id,
                               "receive_count": record.attributes.approximate_receive_count}
        try:
            contract = parse_message(record.body, record.message_id)
            log |= {"contract_id": contract.contract_id, "source": contract.source, "source_id": contract.source_id}
            if self.context.get_remaining_time_in_millis() < self.min_remaining_ms:
                raise TransientFailure("not enough time left in this invocation", reason="out_of_time")
            account = self.service.process(contract)
        except PermanentFailure as exc:
            logger.error("permanent failure: message sent to the dead-letter queue",
                         extra={**log, "reason": exc.reason, "error": str(exc)})
            self._dead_letter(record, exc)
            metrics.add_metric(name="PermanentFailures", unit=MetricUnit.Count, value=1)
            return  # reported as processed: SQS deletes it, no useless retry
        except Exception as exc:
            reason = exc.reason if isinstance(exc, TransientFailure) else "unexpected"
            delay = self._delay_redelivery(record)
            logger.warning("transient failure: message will be retried",
                           extra={**log, "reason": reason, "error": str(exc), "retry_in_seconds": delay},
                           exc_info=reason == "unexpected")
            metrics.add_metric(name="TransientFailures", unit=MetricUnit.Count, value=1)
            raise
        logger.info("contract billed", extra={**log, "account_number": account.account_number})
        metrics.add_metric(name="ContractsBilled", unit=MetricUnit.Count, value=1)

    def _dead_letter(self, record: SQSRecord, failure: PermanentFailure) -> None:
        why = DeadLetterReason(failure.reason, str(failure) or failure.reason)
        if not dead_letter(self.deps.sqs, self.deps.settings.dead_letter_queue_url, [record],
                           {record.message_id: why}):
            raise NotDeadLettered("the dead-letter queue did not accept the message; it stays on the queue")

    def _delay_redelivery(self, record: SQSRecord) -> int | None:
        """Exponential backoff with jitter through the message's visibility timeout (30 s, 60 s, ... 15 min)."""
        settings = self.deps.settings
        delay = redelivery_delay(int(record.attributes.approximate_receive_count or 1),
                                 base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds)
        return delay if postpone(self.deps.sqs, [(record, delay)]) else None  # else the queue's own timeout
