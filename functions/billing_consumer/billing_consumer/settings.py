"""The billing consumer's settings, read once per container from the variables template.yaml sets."""

from __future__ import annotations

from pydantic import Field

from billing_consumer.billing import BillingSettings
from edge_kit.settings import EnvironmentSettings

DEFAULT_IDEMPOTENCY_TTL = 30 * 24 * 3600  # outlives a DLQ redrive (2 x 14 days) and Salesforce retries (24 h)


class Settings(EnvironmentSettings):
    billing_api_url: str = Field(min_length=1, validation_alias="BILLING_API_URL")
    billing_connect_timeout: float = Field(2.0, gt=0, le=30, validation_alias="BILLING_CONNECT_TIMEOUT")
    billing_read_timeout: float = Field(5.0, gt=0, le=60, validation_alias="BILLING_READ_TIMEOUT")
    dead_letter_queue_url: str = Field(min_length=1, validation_alias="CONTRACTS_DLQ_URL")
    idempotency_table: str = Field(min_length=1, validation_alias="IDEMPOTENCY_TABLE_NAME")
    idempotency_ttl: int = Field(DEFAULT_IDEMPOTENCY_TTL, gt=0, validation_alias="BILLING_IDEMPOTENCY_TTL_SECONDS")
    retry_base_seconds: int = Field(30, ge=0, le=43_200, validation_alias="RETRY_BASE_SECONDS")
    retry_max_seconds: int = Field(900, ge=0, le=43_200, validation_alias="RETRY_MAX_SECONDS")

    @property
    def billing(self) -> BillingSettings:
        return BillingSettings(base_url=self.billing_api_url, connect_timeout=self.billing_connect_timeout,
                               read_timeout=self.billing_read_timeout)
