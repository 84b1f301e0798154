"""Settings from environment variables (template.yaml sets them; docs/request-reply.md lists them)."""

from __future__ import annotations

import os
from typing import ClassVar

from pydantic import BaseModel, Field, ValidationError


class Settings(BaseModel):
    erp_base_url: str = Field(pattern=r"^https?://[^\s/]+")
    erp_api_key_secret_arn: str = ""  # empty: the ERP needs no key (the local stand-in by default)
    erp_connect_timeout_seconds: float = Field(1.0, gt=0, le=10)
    erp_read_timeout_seconds: float = Field(2.5, gt=0, le=25)
    erp_max_attempts: int = Field(2, ge=1, le=5)
    budget_seconds: float = Field(6.0, gt=0, le=25)  # well inside Salesforce's 10 s callout default
    cache_ttl_seconds: float = Field(30.0, ge=0, le=3600)  # 0 turns the cache off
    stale_if_error_seconds: float = Field(300.0, ge=0, le=86400)  # 0: never answer stale
    breaker_failure_threshold: int = Field(3, ge=1, le=100)
    breaker_reset_seconds: float = Field(30.0, gt=0, le=3600)

    ENV: ClassVar[dict[str, str]] = {
        "erp_base_url": "ERP_BASE_URL",
        "erp_api_key_secret_arn": "ERP_API_KEY_SECRET_ARN",
        "erp_connect_timeout_seconds": "ERP_CONNECT_TIMEOUT_SECONDS",
        "erp_read_timeout_seconds": "ERP_READ_TIMEOUT_SECONDS",
        "erp_max_attempts": "ERP_MAX_ATTEMPTS",
        "budget_seconds": "AVAILABILITY_BUDGET_SECONDS",
        "cache_ttl_seconds": "AVAILABILITY_CACHE_TTL_SECONDS",
        "stale_if_error_seconds": "AVAILABILITY_STALE_IF_ERROR_SECONDS",
        "breaker_failure_threshold": "BREAKER_FAILURE_THRESHOLD",
        "breaker_reset_seconds": "BREAKER_RESET_SECONDS",
    }

    @classmethod
    def from_env(cls) -> Settings:
        values = {field: os.environ[name] for field, name in cls.ENV.items() if os.environ.get(name, "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            names = ", ".join(sorted(cls.ENV[str(e["loc"][0])] for e in exc.errors()))
            raise ConfigurationError(f"invalid or missing environment variable(s): {names}") from None


class ConfigurationError(RuntimeError):
    """The function is deployed with bad settings: an operator's problem, answered as a 500."""
