"""Settings from the environment (template.yaml sets them; docs/ui-update.md lists them)."""

from __future__ import annotations

from pydantic import Field

from edge_kit.settings import EnvironmentSettings
from edge_kit.signatures import DEFAULT_TOLERANCE_SECONDS


class Settings(EnvironmentSettings):
    bus_name: str = Field(min_length=1, validation_alias="LOGISTICS_BUS_NAME")
    signing_secret_arn: str = Field(min_length=1, validation_alias="LOGISTICS_SIGNING_SECRET_ARN")
    secret_max_age: int = Field(300, ge=0, le=86400, validation_alias="SIGNING_SECRET_MAX_AGE")
    tolerance: int = Field(DEFAULT_TOLERANCE_SECONDS, ge=1, validation_alias="SIGNATURE_TOLERANCE_SECONDS")
