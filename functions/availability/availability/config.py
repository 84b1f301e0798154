"""Settings from environment variables (template.yaml sets them; docs/request-reply.md lists them)."""

from __future__ import annotations

from pydantic import Field

from edge_kit.settings import ConfigurationError as ConfigurationError  # raised by from_environment()
from edge_kit.settings import EnvironmentSettings


class Settings(EnvironmentSettings):
    erp_base_url: str = Field(pattern=r"^https?://[^\s/]+", validation_alias="ERP_BASE_URL")
    # empty: the ERP needs no key (the local stand-in by default)
    erp_api_key_secret_arn: str = Field("", validation_alias="ERP_API_KEY_SECRET_ARN")
    erp_connect_timeout_seconds: float = Field(1.0, gt=0, le=10, validation_alias="ERP_CONNECT_TIMEOUT_SECONDS")
    erp_read_timeout_seconds: float = Field(2.5, gt=0, le=25, validation_alias="ERP_READ_TIMEOUT_SECONDS")
    erp_max_attempts: int = Field(2, ge=1, le=5, validation_alias="ERP_MAX_ATTEMPTS")
    # well inside Salesforce's 10 s callout default
    budget_seconds: float = Field(6.0, gt=0, le=25, validation_alias="AVAILABILITY_BUDGET_SECONDS")
    # 0 turns the cache off
    cache_ttl_seconds: float = Field(30.0, ge=0, le=3600, validation_alias="AVAILABILITY_CACHE_TTL_SECONDS")
    # 0: never answer stale
    stale_if_error_seconds: float = Field(300.0, ge=0, le=86400, validation_alias="AVAILABILITY_STALE_IF_ERROR_SECONDS")
    breaker_failure_threshold: int = Field(3, ge=1, le=100, validation_alias="BREAKER_FAILURE_THRESHOLD")
    breaker_reset_seconds: float = Field(30.0, gt=0, le=3600, validation_alias="BREAKER_RESET_SECONDS")
