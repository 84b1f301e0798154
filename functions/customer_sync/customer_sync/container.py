"""What one warm container keeps between invocations, shared by ``start`` and ``work``: the settings, the boto3
clients, the ERP client (its session and its key's cache) and the run lifecycle wired on them. Built on first
use, not at import (tests start moto first); ``reset()`` forgets them (tests only, never needed in Lambda).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from edge_kit.outside_http import ApiKeyReader
from salesforce_access import get_access

from .config import Settings
from .erp import ErpCustomers
from .report import Report
from .runs import SyncRuns
from .state import StateStore
from .steps import StepQueue

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

AWS_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 4})


@dataclass(frozen=True)
class Clients:
    dynamodb: DynamoDBClient
    s3: S3Client
    sqs: SQSClient


@functools.cache
def settings() -> Settings:
    return Settings.from_environment()


@functools.cache
def clients() -> Clients:
    return Clients(boto3.client("dynamodb", config=AWS_CONFIG), boto3.client("s3", config=AWS_CONFIG),
                   boto3.client("sqs", config=AWS_CONFIG))


@functools.cache
def erp() -> ErpCustomers:
    config = settings()
    # The secret holds the bare key or {"api_key": "..."} (docs/configuration.md); re-read after a 401.
    key = ApiKeyReader(config.erp_api_key_secret_arn) if config.erp_api_key_secret_arn else None
    return ErpCustomers(config.erp_base_url, api_key=key, connect_timeout=config.erp_connect_timeout_seconds,
                        read_timeout=config.erp_read_timeout_seconds, max_attempts=config.erp_max_attempts)


@functools.cache
def runs() -> SyncRuns:
    config, aws = settings(), clients()
    store = StateStore(aws.dynamodb, config.state_table, lease_seconds=config.lock_ttl_seconds)
    return SyncRuns(config, store, StepQueue(aws.sqs, config.queue_url),
                    report=lambda: Report(aws.s3, config.report_bucket), erp=erp,
                    access=lambda context: get_access().bind(context))


def reset() -> None:
    """Forget the cached settings, clients and wiring."""
    for cached in (settings, clients, erp, runs):
        cached.cache_clear()
