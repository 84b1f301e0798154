"""The Salesforce secret: one JSON document per org in Secrets Manager, validated by pydantic.

``flow`` selects the OAuth flow. Errors name the offending field but never echo its value (pydantic's
``input`` is dropped), and the secret is read through Powertools Parameters so warm containers reuse it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_validator

import salesforce_access.observability  # noqa: F401 - installs the filter that keeps secrets out of botocore's logs
from salesforce_access.errors import ConfigurationError
from salesforce_access.redaction import register_secret

DEFAULT_LOGIN_URL = "https://login.salesforce.com"
DEFAULT_API_VERSION = "62.0"  # the version salesforce/sfdx-project.json deploys the metadata with
DEFAULT_SECRET_MAX_AGE = 300
FLOWS = ("jwt_bearer", "client_credentials", "username_password")


class _SecretBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True, hide_input_in_errors=True)

    login_url: str = DEFAULT_LOGIN_URL
    api_version: str = Field(DEFAULT_API_VERSION, pattern=r"^\d{2,3}\.0$")

    @field_validator("login_url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("must be an https:// URL without query or fragment")
        return value.rstrip("/")

    def secret_values(self) -> list[str]:
        """Every credential in this secret, for redaction."""
        return [
            value.get_secret_value()
            for value in (getattr(self, name) for name in type(self).model_fields)
            if isinstance(value, SecretStr)
        ]


class JwtBearerSecret(_SecretBase):
    """OAuth 2.0 JWT bearer flow (recommended): a connected app with a certificate, no password."""

    flow: Literal["jwt_bearer"]
    client_id: str = Field(min_length=1)
    username: str = Field(min_length=1)
    private_key: SecretStr
    audience: str | None = None

    @field_validator("private_key")
    @classmethod
    def _pem(cls, value: SecretStr) -> SecretStr:
        pem = value.get_secret_value()
        if "PRIVATE KEY-----" not in pem:
            raise ValueError("must be a PEM-encoded private key")
        if "\n" not in pem and "\\n" in pem:  # newlines escaped twice when the JSON was hand-made
            return SecretStr(pem.replace("\\n", "\n"))
        return value


class ClientCredentialsSecret(_SecretBase):
    """OAuth 2.0 client credentials flow: ``login_url`` must be the org's My Domain URL."""

    flow: Literal["client_credentials"]
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    login_url: str

    @field_validator("login_url")
    @classmethod
    def _my_domain(cls, value: str) -> str:
        host = urlsplit(value).hostname or ""
        if host in {"login.salesforce.com", "test.salesforce.com"}:
            raise ValueError("must be the org's My Domain URL; Salesforce refuses this flow on login/test")
        return value


class UsernamePasswordSecret(_SecretBase):
    """OAuth 2.0 username-password flow. Deprecated by Salesforce; kept for legacy orgs."""

    flow: Literal["username_password"]
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    username: str = Field(min_length=1)
    password: SecretStr
    security_token: SecretStr = SecretStr("")


SalesforceSecret = Annotated[
    JwtBearerSecret | ClientCredentialsSecret | UsernamePasswordSecret, Field(discriminator="flow")
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(SalesforceSecret)


def _describe_errors(exc: pydantic.ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = [str(part) for part in error["loc"]]
        if loc and loc[0] in FLOWS:
            loc = loc[1:]  # the discriminated union prefixes the tag
        kind = error["type"]
        if kind == "union_tag_not_found":
            field, text = "flow", f"missing; expected one of {', '.join(FLOWS)}"
        elif kind == "union_tag_invalid":
            field, text = "flow", f"unknown flow; expected one of {', '.join(FLOWS)}"
        elif kind == "missing":
            field, text = ".".join(loc), "required field is missing"
        else:
            field, text = ".".join(loc) or "secret", _safe_message(error)
        problems.append(f"{field}: {text}")
    return "; ".join(problems)


def _safe_message(error: Any) -> str:
    # Messages of value errors are ours; pydantic's built-in ones describe the expected type or pattern.
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def parse_secret(raw: str | bytes | Mapping[str, Any], source: str = "Salesforce secret") -> SalesforceSecret:
    """Validate a secret document (JSON text or mapping) into one of the flow models."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ConfigurationError(f"{source} is not valid JSON") from None
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{source} must be a JSON object")
    try:
        secret = _ADAPTER.validate_python(dict(raw))
    except pydantic.ValidationError as exc:
        raise ConfigurationError(f"{source} is invalid: {_describe_errors(exc)}") from None
    for value in secret.secret_values():
        register_secret(value)
    return secret


def secret_max_age() -> int:
    """Seconds a fetched secret is reused: SALESFORCE_SECRET_MAX_AGE or 300."""
    return int(os.environ.get("SALESFORCE_SECRET_MAX_AGE", DEFAULT_SECRET_MAX_AGE))


def load_secret(secret_id: str, *, force_fetch: bool = False, max_age: int | None = None) -> SalesforceSecret:
    """Read and validate the secret through Powertools Parameters (cached for `max_age` seconds)."""
    from aws_lambda_powertools.utilities import parameters  # imports boto3: only when first needed

    try:
        raw = parameters.get_secret(
            secret_id, force_fetch=force_fetch, max_age=secret_max_age() if max_age is None else max_age
        )
    except parameters.GetParameterError as exc:
        raise ConfigurationError(f"cannot read Salesforce secret {secret_id}: {exc}") from None
    if raw is None:
        raise ConfigurationError(f"Salesforce secret {secret_id} is empty")
    return parse_secret(raw, source=f"Salesforce secret {secret_id}")
