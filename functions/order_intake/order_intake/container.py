"""What one warm container keeps between invocations, shared by the API handler and the SQS worker.

Settings, the SQS client, the order ledger (a boto3 resource: ~15 ms to build) and the price book cache
are built once per container; `reset()` forgets them (tests only, never needed in Lambda).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from order_intake.config import Settings
from order_intake.ledger import OrderLedger
from order_intake.salesforce import ProductCatalog, SalesforceOrders
from order_intake.service import OrderIntake
from salesforce_access import get_access
from salesforce_access.observability import metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_sqs import SQSClient

AWS_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})

CLAIM_MARGIN_SECONDS = 30  # a claim outlives its writer's deadline by this much, then lapses (a crashed writer)

catalog = ProductCatalog()  # price book entries outlive the invocation


@functools.cache
def settings() -> Settings:
    return Settings.from_environment()


@functools.cache
def sqs() -> SQSClient:
    return boto3.client("sqs", config=AWS_CONFIG)


@functools.cache
def ledger() -> OrderLedger:
    config = settings()
    return OrderLedger(config.state_table, config.ledger_ttl_days)


def intake_service(context: LambdaContext, max_share: float) -> OrderIntake:
    """The order service for one invocation: the warm ledger and price book, Salesforce bound to its deadline."""
    config = settings()
    catalog.ttl = config.product_cache_seconds
    return OrderIntake(
        ledger=ledger(), salesforce=SalesforceOrders(get_access().bind(context), catalog),
        max_share=max_share, retry=config.retry,
        claim_seconds=context.get_remaining_time_in_millis() / 1000 + CLAIM_MARGIN_SECONDS,
        on_ledger_error=lambda op: metrics.add_metric(name=f"OrderLedger{op.title()}Errors", unit=MetricUnit.Count,
                                                      value=1),
    )


def reset() -> None:
    """Forget cached settings, clients and price book entries."""
    settings.cache_clear()
    sqs.cache_clear()
    ledger.cache_clear()
    catalog.clear()
