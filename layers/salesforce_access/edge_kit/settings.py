"""One settings pattern for every function: a pydantic model whose fields name their environment variables.

Declare each field with ``validation_alias`` set to its variable; ``from_environment()`` validates every
variable at once and raises ``ConfigurationError`` naming each missing or invalid variable (never a value:
some are secrets' ARNs, none should be echoed). An empty variable counts as unset, so a template default of
"" means "use the field's default". Written here rather than taken from pydantic-settings because that
package is not in the layer and adds a dependency and import time for the few lines below.

    class Settings(EnvironmentSettings):
        state_table: str = Field(min_length=1, validation_alias="STATE_TABLE_NAME")
        read_timeout: float = Field(5.0, gt=0, le=30, validation_alias="ERP_READ_TIMEOUT_SECONDS")

    settings = Settings.from_environment()
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigurationError(RuntimeError):
    """The function is deployed with bad settings: an operator's problem, never retried into success."""


class EnvironmentSettings(BaseModel):
    """Base class of every function's settings (frozen: settings never change while a container lives)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @classmethod
    def variables(cls) -> dict[str, str]:
        """{field name: environment variable} for every field."""
        return {name: str(field.validation_alias or name.upper()) for name, field in cls.model_fields.items()}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        environ = os.environ if environ is None else environ
        variables = cls.variables()
        values = {var: environ[var] for var in variables.values() if environ.get(var, "").strip() != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            names = sorted({variables.get(str(error["loc"][0]), str(error["loc"][0])) for error in exc.errors()})
            raise ConfigurationError(f"invalid or missing environment variable(s): {', '.join(names)}") from None
