"""Settings from environment variables (template.yaml sets them; docs/batch-sync.md lists them)."""

from __future__ import annotations

from pydantic import Field

from edge_kit.settings import ConfigurationError, EnvironmentSettings

__all__ = ["ConfigurationError", "Settings"]


class Settings(EnvironmentSettings):
    state_table: str = Field(min_length=1, validation_alias="STATE_TABLE_NAME")
    queue_url: str = Field(min_length=1, validation_alias="SYNC_QUEUE_URL")
    report_bucket: str = Field(min_length=1, validation_alias="SYNC_REPORT_BUCKET")
    erp_base_url: str = Field(pattern=r"^https?://[^\s/]+", validation_alias="ERP_BASE_URL")
    # empty: the ERP needs no key (the local stand-in by default)
    erp_api_key_secret_arn: str = Field("", validation_alias="ERP_API_KEY_SECRET_ARN")
    erp_connect_timeout_seconds: float = Field(2.0, gt=0, le=10, validation_alias="ERP_CONNECT_TIMEOUT_SECONDS")
    erp_read_timeout_seconds: float = Field(30.0, gt=0, le=120, validation_alias="ERP_READ_TIMEOUT_SECONDS")
    erp_max_attempts: int = Field(4, ge=1, le=10, validation_alias="ERP_MAX_ATTEMPTS")
    # the ERP's updated_by for our writes (the echo filter)
    erp_user: str = Field("salesforce-sync", min_length=1, max_length=80, validation_alias="SYNC_ERP_USER")
    # empty: the token's own user (access.user_id)
    integration_user_id: str = Field("", validation_alias="SYNC_INTEGRATION_USER_ID")
    watermark_lag_seconds: float = Field(60.0, ge=0, le=3600, validation_alias="SYNC_WATERMARK_LAG_SECONDS")
    time_reserve_seconds: float = Field(90.0, ge=0, le=600, validation_alias="SYNC_TIME_RESERVE_SECONDS")
    # the run lock's and the step's lease after the worker's last heartbeat (it beats every fifth of it)
    lock_ttl_seconds: int = Field(300, ge=60, le=3600, validation_alias="SYNC_LOCK_TTL_SECONDS")
    bulk_part_records: int = Field(100_000, ge=1, le=10_000_000, validation_alias="SYNC_BULK_PART_RECORDS")
    bulk_query_page_size: int = Field(50_000, ge=1, le=500_000, validation_alias="SYNC_BULK_QUERY_PAGE_SIZE")
    max_api_share: float = Field(0.8, gt=0, le=1, validation_alias="SYNC_MAX_API_SHARE")
    erp_page_size: int = Field(500, ge=1, le=500, validation_alias="SYNC_ERP_PAGE_SIZE")
