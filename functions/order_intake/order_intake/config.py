"""Settings from the environment (template.yaml sets them; docs/remote-call-in.md lists them).

One model for the API function and the worker: each reads what it needs (the API the signing secret, the
worker the dead-letter queue), so those two are optional here and checked where they are used.
"""

from __future__ import annotations

from pydantic import Field

from edge_kit.settings import EnvironmentSettings
from order_intake.service import RetryAfter


class Settings(EnvironmentSettings):
    state_table: str = Field(min_length=1, validation_alias="STATE_TABLE_NAME")
    signing_secret_arn: str | None = Field(None, validation_alias="ORDER_SIGNING_SECRET_ARN")
    queue_url: str | None = Field(None, validation_alias="ORDER_QUEUE_URL")
    dead_letter_queue_url: str | None = Field(None, validation_alias="ORDER_DLQ_URL")
    signature_tolerance: int = Field(300, ge=1, validation_alias="SIGNATURE_TOLERANCE_SECONDS")
    signing_secret_max_age: int = Field(300, ge=0, le=86400, validation_alias="SIGNING_SECRET_MAX_AGE")
    product_cache_seconds: float = Field(300, ge=0, validation_alias="PRODUCT_CACHE_SECONDS")
    sync_max_share: float = Field(0.9, gt=0, le=1, validation_alias="SYNC_API_MAX_SHARE")
    async_max_share: float = Field(0.7, gt=0, le=1, validation_alias="ASYNC_API_MAX_SHARE")
    retry_after_unavailable: int = Field(30, ge=1, validation_alias="RETRY_AFTER_UNAVAILABLE")
    retry_after_allocation: int = Field(900, ge=1, validation_alias="RETRY_AFTER_ALLOCATION")
    ledger_ttl_days: int = Field(400, ge=1, validation_alias="ORDER_LEDGER_TTL_DAYS")
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1, validation_alias="MAX_BODY_BYTES")

    @property
    def retry(self) -> RetryAfter:
        """Seconds a caller (or the worker's backoff) waits, per kind of outage."""
        return RetryAfter(unavailable=self.retry_after_unavailable, allocation=self.retry_after_allocation)
