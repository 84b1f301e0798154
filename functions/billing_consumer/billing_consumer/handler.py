"""SQS -> billing consumer: partial batch responses, idempotent per contract, DLQ without retries for
permanent failures, backoff for transient ones.

Why permanent failures are sent to the DLQ by the function itself (and reported as processed) rather than
relying on the queue's redrive policy: maxReceiveCount is one number for the whole queue, and it must stay
high enough for billing outages to be retried; a message that can never succeed would otherwise be retried
that many times, calling billing each time.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
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

from billing_consumer.billing import BillingClient, BillingSettings
from billing_consumer.errors import PermanentFailure, TransientFailure
from billing_consumer.models import BillingAccount, ContractSigned, parse_message
from billing_consumer.salesforce import SalesforceContracts
from billing_consumer.service import BillingService
from salesforce_access.observability import logger, metrics, tracer

IDEMPOTENCY_KEY_PREFIX = "billing-account"
DEFAULT_IDEMPOTENCY_TTL = 8 * 24 * 3600  # longer than Salesforce retries an Outbound Message (up to 7 days)
CALLBACK_RESERVE_SECONDS = 5.0  # kept for the Salesforce callback after the slowest billing call
AWS_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


@dataclass(frozen=True)
class Settings:
    billing: BillingSettings
    dead_letter_queue_url: str
    idempotency_table: str
    idempotency_ttl: int
    retry_base_seconds: int
    retry_max_seconds: int

    @classmethod
    def from_environment(cls) -> Settings:
        def required(name: str) -> str:
            value = os.environ.get(name, "").strip()
            if not value:
                raise RuntimeError(f"environment variable {name} is not set")
            return value

        return cls(
            billing=BillingSettings(
                base_url=required("BILLING_API_URL"),
                connect_timeout=float(os.environ.get("BILLING_CONNECT_TIMEOUT", "2")),
                read_timeout=float(os.environ.get("BILLING_READ_TIMEOUT", "5")),
            ),
            dead_letter_queue_url=required("CONTRACTS_DLQ_URL"),
            idempotency_table=required("IDEMPOTENCY_TABLE_NAME"),
            idempotency_ttl=int(os.environ.get("BILLING_IDEMPOTENCY_TTL_SECONDS", DEFAULT_IDEMPOTENCY_TTL)),
            retry_base_seconds=int(os.environ.get("RETRY_BASE_SECONDS", "30")),
            retry_max_seconds=int(os.environ.get("RETRY_MAX_SECONDS", "900")),
        )


@dataclass(frozen=True)
class Dependencies:
    settings: Settings
    sqs: Any
    idempotency: IdempotencyConfig
    open_account: Callable[[ContractSigned], BillingAccount]


def _on_replay(response: Any, data_record: Any) -> Any:
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


class Consumer:
    """Handles one record at a time for one invocation; decides each record's fate."""

    def __init__(self, deps: Dependencies, context: Any):
        self.deps = deps
        self.context = context
        self.service = BillingService(deps.open_account, SalesforceContracts(context))
        self.min_remaining_ms = int((deps.settings.billing.worst_case_seconds + CALLBACK_RESERVE_SECONDS) * 1000)

    def __call__(self, record: SQSRecord) -> None:
        log = {"message_id": record.message_id, "receive_count": record.attributes.approximate_receive_count}
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
        """The original body, unchanged (a DLQ redrive replays it), with why it failed as attributes."""
        attributes = {
            "failure_reason": failure.reason,
            "failure_detail": str(failure)[:1000] or failure.reason,
            "source_message_id": record.message_id,
            "source_queue_arn": record.event_source_arn,
        }
        self.deps.sqs.send_message(
            QueueUrl=self.deps.settings.dead_letter_queue_url, MessageBody=record.body,
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )  # if this raises, the record is reported as failed and retried: nothing is lost

    def _delay_redelivery(self, record: SQSRecord) -> int | None:
        """Exponential backoff with jitter through the message's visibility timeout (30 s, 60 s, ... 15 min)."""
        settings = self.deps.settings
        attempt = max(int(record.attributes.approximate_receive_count or 1), 1)
        ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** min(attempt - 1, 20))
        delay = int(ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311 - jitter, not security
        try:
            self.deps.sqs.change_message_visibility(QueueUrl=_queue_url(self.deps.sqs, record.event_source_arn),
                                                    ReceiptHandle=record.receipt_handle, VisibilityTimeout=delay)
        except Exception as exc:  # the queue's own visibility timeout still applies
            logger.warning("could not delay the redelivery", extra={"error": type(exc).__name__})
            return None
        return delay


_QUEUE_URLS: dict[str, str] = {}


def _queue_url(sqs: Any, queue_arn: str) -> str:
    """The URL of the queue a record came from (one GetQueueUrl per container)."""
    if queue_arn not in _QUEUE_URLS:
        _, _, _, _, account, name = queue_arn.split(":", 5)
        _QUEUE_URLS[queue_arn] = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return _QUEUE_URLS[queue_arn]


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deps = dependencies()
    deps.idempotency.register_lambda_context(context)
    # A processor per invocation (it holds the batch's results); an all-failed batch is reported like any
    # other partial failure instead of raising, and shows up in the TransientFailures metric.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=Consumer(deps, context), processor=processor,
                                    context=context)
