"""Settings from environment variables (template.yaml sets them; docs/batch-sync.md lists them)."""

from __future__ import annotations

import os
from typing import ClassVar

from pydantic import BaseModel, Field, ValidationError


class ConfigurationError(RuntimeError):
    """The function is deployed with bad settings: an operator's problem, never retried into success."""


class Settings(BaseModel):
    state_table: str = Field(min_length=1)
    queue_url: str = Field(min_length=1)
    report_bucket: str = Field(min_length=1)
    erp_base_url: str = Field(pattern=r"^https?://[^\s/]+")
    erp_api_key_secret_arn: str = ""  # empty: the ERP needs no key (the local stand-in by default)
    erp_connect_timeout_seconds: float = Field(2.0, gt=0, le=10)
    erp_read_timeout_seconds: float = Field(30.0, gt=0, le=120)
    erp_max_attempts: int = Field(4, ge=1, le=10)
    erp_user: str = Field("salesforce-sync", min_length=1, max_length=80)  # the ERP's updated_by for our writes
    integration_user_id: str = ""  # empty: the token's own user (access.user_id)
    watermark_lag_seconds: float = Field(60.0, ge=0, le=3600)
    time_reserve_seconds: float = Field(90.0, ge=0, le=600)
    lock_ttl_seconds: int = Field(1800, ge=60, le=86400)
    bulk_part_records: int = Field(100_000, ge=1, le=10_000_000)
    bulk_query_page_size: int = Field(50_000, ge=1, le=500_000)
    max_api_share: float = Field(0.8, gt=0, le=1)
    erp_page_size: int = Field(500, ge=1, le=500)

    ENV: ClassVar[dict[str, str]] = {
        "state_table": "STATE_TABLE_NAME",
        "queue_url": "SYNC_QUEUE_URL",
        "report_bucket": "SYNC_REPORT_BUCKET",
        "erp_base_url": "ERP_BASE_URL",
        "erp_api_key_secret_arn": "ERP_API_KEY_SECRET_ARN",
        "erp_connect_timeout_seconds": "ERP_CONNECT_TIMEOUT_SECONDS",
        "erp_read_timeout_seconds": "ERP_READ_TIMEOUT_SECONDS",
        "erp_max_attempts": "ERP_MAX_ATTEMPTS",
        "erp_user": "SYNC_ERP_USER",
        "integration_user_id": "SYNC_INTEGRATION_USER_ID",
        "watermark_lag_seconds": "SYNC_WATERMARK_LAG_SECONDS",
        "time_reserve_seconds": "SYNC_TIME_RESERVE_SECONDS",
        "lock_ttl_seconds": "SYNC_LOCK_TTL_SECONDS",
        "bulk_part_records": "SYNC_BULK_PART_RECORDS",
        "bulk_query_page_size": "SYNC_BULK_QUERY_PAGE_SIZE",
        "max_api_share": "SYNC_MAX_API_SHARE",
        "erp_page_size": "SYNC_ERP_PAGE_SIZE",
    }

    @classmethod
    def from_env(cls) -> Settings:
        values = {field: os.environ[name] for field, name in cls.ENV.items() if os.environ.get(name, "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            names = ", ".join(sorted({cls.ENV[str(e["loc"][0])] for e in exc.errors()}))
            raise ConfigurationError(f"invalid or missing environment variable(s): {names}") from None
