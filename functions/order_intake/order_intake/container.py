"""What one warm container keeps between invocations, shared by the API handler and the SQS worker.

Settings, the SQS client, the order ledger (a boto3 resource: ~15 ms to build) and the price book cache
are built once per container; `reset()` forgets them (tests only, never needed in Lambda).
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

from order_intake.config import Settings
from order_intake.ledger import OrderLedger
from order_intake.salesforce import ProductCatalog

AWS_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})

catalog = ProductCatalog()  # price book entries outlive the invocation


@functools.cache
def settings() -> Settings:
    return Settings.from_environment()


@functools.cache
def sqs() -> Any:
    return boto3.client("sqs", config=AWS_CONFIG)


@functools.cache
def ledger() -> OrderLedger:
    config = settings()
    return OrderLedger(config.state_table, config.ledger_ttl_days)


def reset() -> None:
    """Forget cached settings, clients and price book entries."""
    settings.cache_clear()
    sqs.cache_clear()
    ledger.cache_clear()
    catalog.clear()
