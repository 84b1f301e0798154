"""OAuth token requests made by the layer itself, so any login URL works (My Domain, sandbox, emulator).

The token is fetched lazily on first use, kept for the life of the container and replaced only when
Salesforce reports INVALID_SESSION_ID; nothing is fetched at import or init (SnapStart-safe).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aws_lambda_powertools.metrics import MetricUnit

from salesforce_access.config import (
    ClientCredentialsSecret,
    JwtBearerSecret,
    SalesforceSecret,
    UsernamePasswordSecret,
)
from salesforce_access.errors import AuthenticationError, ConfigurationError
from salesforce_access.observability import logger, metrics
from salesforce_access.redaction import register_secret

if TYPE_CHECKING:
    import requests

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME_SECONDS = 180  # Salesforce accepts assertions that expire within 3 minutes


_IDENTITY_PATH = re.compile(r"/id/(?P<org>[A-Za-z0-9]{15,18})/(?P<user>[A-Za-z0-9]{15,18})/?$")


@dataclass(frozen=True)
class AccessToken:
    """An access token and the instance it is valid for. ``repr`` never shows the token.

    ``identity_url`` is the token response's ``id`` (``https://login.salesforce.com/id/<orgId>/<userId>``),
    which names the user the token acts as, whatever the flow (client credentials has no username).
    """

    value: str = field(repr=False)
    instance_url: str
    issued_at: float = field(default_factory=time.time)
    identity_url: str | None = None

    def _identity(self, part: str) -> str | None:
        match = _IDENTITY_PATH.search(urlsplit(self.identity_url).path) if self.identity_url else None
        return match.group(part) if match else None

    @property
    def user_id(self) -> str | None:
        return self._identity("user")

    @property
    def org_id(self) -> str | None:
        return self._identity("org")


PostForm = Callable[..., "requests.Response"]
"""``post(url, data=..., auth=...)`` -> response; the transport's retrying, unauthenticated POST."""


def jwt_assertion(secret: JwtBearerSecret, now: float | None = None) -> str:
    """The RS256-signed assertion: iss=client_id, sub=username, aud=audience or login URL, exp=now+3min."""
    import jwt  # PyJWT + cryptography: imported on first token request only (cold start)

    issued = int(time.time() if now is None else now)
    claims = {
        "iss": secret.client_id,
        "sub": secret.username,
        "aud": secret.audience or secret.login_url,
        "exp": issued + JWT_LIFETIME_SECONDS,
    }
    try:
        return jwt.encode(claims, secret.private_key.get_secret_value(), algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError):
        raise ConfigurationError("private_key: not a usable RSA private key in PEM format") from None


def token_request(secret: SalesforceSecret) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Form body and optional HTTP Basic credentials for the secret's flow."""
    if isinstance(secret, JwtBearerSecret):
        assertion = jwt_assertion(secret)
        register_secret(assertion)
        return {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}, None
    if isinstance(secret, ClientCredentialsSecret):
        return {"grant_type": "client_credentials"}, (secret.client_id, secret.client_secret.get_secret_value())
    if isinstance(secret, UsernamePasswordSecret):
        logger.warning(
            "The OAuth username-password flow is deprecated by Salesforce; move this org to jwt_bearer "
            "or client_credentials",
            extra={"flow": secret.flow},
        )
        password = secret.password.get_secret_value() + secret.security_token.get_secret_value()
        return {
            "grant_type": "password",
            "client_id": secret.client_id,
            "client_secret": secret.client_secret.get_secret_value(),
            "username": secret.username,
            "password": password,
        }, None
    raise ConfigurationError(f"unsupported flow {type(secret).__name__}")


def request_token(secret: SalesforceSecret, post: PostForm) -> AccessToken:
    """POST {login_url}/services/oauth2/token and return the token, or raise AuthenticationError."""
    url = f"{secret.login_url}/services/oauth2/token"
    data, basic = token_request(secret)
    response = post(url, data=data, auth=basic, headers={"Accept": "application/json"})
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        error = body.get("error", "invalid_response") if isinstance(body, dict) else "invalid_response"
        description = body.get("error_description", "") if isinstance(body, dict) else ""
        raise AuthenticationError(
            str(error), str(description or f"token endpoint answered HTTP {response.status_code}"),
            status=response.status_code, url=url,
        )
    token = str(body["access_token"])
    register_secret(token)
    instance_url = str(body.get("instance_url") or secret.login_url).rstrip("/")
    logger.info("Obtained Salesforce access token", extra={"flow": secret.flow, "instance_url": instance_url})
    identity = body.get("id")
    return AccessToken(value=token, instance_url=instance_url,
                       identity_url=identity if isinstance(identity, str) else None)


class TokenManager:
    """Holds the container's token: fetched on first use, shared by all calls, replaced on expiry."""

    def __init__(self, load_secret: Callable[[bool], SalesforceSecret], post: PostForm):
        self._load_secret = load_secret
        self._post = post
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self.token_requests = 0

    def current(self) -> AccessToken:
        with self._lock:
            if self._token is None:
                self._token = self._fetch()
            return self._token

    def peek(self) -> AccessToken | None:
        """The token if one was already fetched (never triggers a request)."""
        return self._token

    def invalidate(self, stale: AccessToken) -> None:
        """Forget `stale` unless another caller already replaced it."""
        with self._lock:
            if self._token is stale:
                self._token = None

    def _fetch(self) -> AccessToken:
        secret = self._load_secret(False)
        try:
            return self._request(secret)
        except AuthenticationError:
            # The cached secret may predate a rotation: read it again once, bypassing the cache.
            fresh = self._load_secret(True)
            if fresh == secret:
                raise
            logger.info("Salesforce secret changed since it was cached; retrying authentication")
            return self._request(fresh)

    def _request(self, secret: SalesforceSecret) -> AccessToken:
        self.token_requests += 1
        metrics.add_metric(name="SalesforceTokenRequests", unit=MetricUnit.Count, value=1)
        return request_token(secret, self._post)
