"""Fixtures for the layer's tests: moto Secrets Manager, the local Salesforce emulator, captured logs.

Every test in this folder runs with the layer's Powertools logger at DEBUG and its output captured; at
teardown the captured logs are scanned for the emulator's credentials and every token it issued.
`ManualClock` replaces the wall clock wherever the layer takes one (budgets, backoff sleeps), and
`independent_client` is simple-salesforce on its own session and token, to read back what the layer wrote.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from moto import mock_aws
from simple_salesforce import Salesforce

from salesforce_access import PollPolicy, RetryPolicy, SalesforceAccess, Timeouts, auth, reset_access_cache
from salesforce_access.observability import logger, metrics
from salesforce_emulator import Emulator

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=4)
FAST_POLL = PollPolicy(initial=0.05, max_delay=0.2)
SHORT_TIMEOUTS = Timeouts(connect=2.0, read=2.0)


@dataclass
class ManualClock:
    """A monotonic clock that moves only when the code under test sleeps: budgets without waiting."""

    now: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class LambdaContext:
    """Stands in for the Lambda context: only the remaining time matters to the layer."""

    remaining_ms: int = 60_000
    clock: Callable[[], float] = time.monotonic
    started: float | None = None

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = self.clock()

    def get_remaining_time_in_millis(self) -> int:
        elapsed = self.clock() - (self.started or 0.0)
        return max(int(self.remaining_ms - elapsed * 1000), 0)


# -- logs -------------------------------------------------------------------------------------------

_SEEN_TOKENS: set[str] = set()  # every access token and JWT assertion issued during the run


@pytest.fixture(autouse=True)
def layer_logs() -> Iterator[io.StringIO]:
    """The layer's JSON log lines (DEBUG and up) written during the test, formatted as in Lambda."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    previous = logger.log_level
    logger.setLevel("DEBUG")
    try:
        yield stream
    finally:
        logging.getLogger(logger.name).removeHandler(handler)
        logger.setLevel(previous)
        metrics.clear_metrics()


def log_records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def seen_tokens() -> set[str]:
    return set(_SEEN_TOKENS)


def credential_values(info: dict[str, Any]) -> list[str]:
    """Everything that must never be logged: emulator secrets, the private key, issued tokens and assertions."""
    key = Path(info["private_key_file"]).read_text()
    values = [info["client_secret"], info["password"], key]
    values += [line for line in key.splitlines() if line and not line.startswith("-----")]
    return values + sorted(_SEEN_TOKENS)


# -- emulator ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def emu(emulator: Emulator, layer_logs: io.StringIO, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The shared emulator, reset for the test; afterwards the test's logs are scanned for credentials."""
    real_request_token, real_assertion = auth.request_token, auth.jwt_assertion

    def recording_request_token(*args: Any, **kwargs: Any) -> auth.AccessToken:
        token = real_request_token(*args, **kwargs)
        _SEEN_TOKENS.add(token.value)
        return token

    def recording_assertion(*args: Any, **kwargs: Any) -> str:
        assertion = real_assertion(*args, **kwargs)
        _SEEN_TOKENS.add(assertion)
        return assertion

    monkeypatch.setattr(auth, "request_token", recording_request_token)
    monkeypatch.setattr(auth, "jwt_assertion", recording_assertion)
    emulator.clear_faults()
    emulator.clear_requests()
    emulator.set_api_usage(0, 15000)
    caplog.set_level(logging.DEBUG)  # every library's logs too: urllib3, botocore, moto
    yield emulator
    emulator.clear_faults()
    if emulator.app is not None:
        _SEEN_TOKENS.update(key for key, _ in emulator.app.store.kv_items("token"))
    records = [r for phase in ("setup", "call", "teardown") for r in caplog.get_records(phase)]
    captured = layer_logs.getvalue() + "\n" + "\n".join(f"{r.name} {r.getMessage()}" for r in records)
    for value in credential_values(emulator.info):
        assert value not in captured, "a credential appeared in the logs"


def token_posts(emu: Emulator) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r["path"] == "/services/oauth2/token"]


def api_calls(emu: Emulator, path_part: str = "/services/data/") -> list[dict[str, Any]]:
    return [r for r in emu.requests() if path_part in r["path"]]


def secret_document(info: dict[str, Any], flow: str, **overrides: Any) -> dict[str, Any]:
    if flow == "jwt_bearer":
        doc = {"flow": flow, "client_id": info["client_id"], "username": info["username"],
               "private_key": Path(info["private_key_file"]).read_text(), "login_url": info["login_url"]}
    elif flow == "client_credentials":
        doc = {"flow": flow, "client_id": info["client_id"], "client_secret": info["client_secret"],
               "login_url": info["login_url"]}
    else:
        doc = {"flow": flow, "client_id": info["client_id"], "client_secret": info["client_secret"],
               "username": info["username"], "password": info["password"], "login_url": info["login_url"]}
    doc.update(overrides)
    return doc


# -- AWS --------------------------------------------------------------------------------------------

@pytest.fixture
def secretsmanager() -> Iterator[SecretsManagerClient]:
    """moto Secrets Manager, with Powertools' parameter caches emptied before and after."""
    with mock_aws():
        parameters.clear_caches()
        DEFAULT_PROVIDERS.clear()
        reset_access_cache()
        yield boto3.client("secretsmanager")
        parameters.clear_caches()
        DEFAULT_PROVIDERS.clear()
        reset_access_cache()


@pytest.fixture
def put_secret(secretsmanager: SecretsManagerClient) -> Callable[..., str]:
    """Store a secret document (dict or raw string) and return its ARN."""
    counter = iter(range(1_000_000))

    def put(document: dict[str, Any] | str, name: str | None = None) -> str:
        body = document if isinstance(document, str) else json.dumps(document)
        created = secretsmanager.create_secret(Name=name or f"salesforce/org-{next(counter)}", SecretString=body)
        return created["ARN"]

    return put


@pytest.fixture
def make_access(emu: Emulator, put_secret: Callable[..., str]) -> Callable[..., SalesforceAccess]:
    """A SalesforceAccess on a moto secret for the emulator, with fast retries and short timeouts."""

    def make(flow: str = "jwt_bearer", *, secret: dict[str, Any] | None = None, **kwargs: Any) -> SalesforceAccess:
        arn = put_secret(secret if secret is not None else secret_document(emu.info, flow))
        options: dict[str, Any] = {"verify": emu.info["ca_bundle"], "retry": FAST_RETRY,
                                   "timeouts": SHORT_TIMEOUTS, "poll": FAST_POLL}
        options.update(kwargs)
        return SalesforceAccess(arn, **options)

    return make


@pytest.fixture
def independent_client(emu: Emulator) -> Iterator[Salesforce]:
    """simple-salesforce on a plain requests.Session with a token of its own: no layer code on its path.

    The tests read back through it what the layer wrote, so a bug shared by the layer's writes and its
    reads cannot hide. simple-salesforce's own logins only know ``*.salesforce.com`` hosts, so the token
    comes from one client-credentials POST to the emulator.
    """
    info = emu.info
    with requests.Session() as session:
        session.verify = info["ca_bundle"]
        session.trust_env = False  # else REQUESTS_CA_BUNDLE, if set, overrides the emulator's CA
        response = session.post(f"{info['login_url']}/services/oauth2/token", timeout=10, data={
            "grant_type": "client_credentials", "client_id": info["client_id"],
            "client_secret": info["client_secret"]})
        response.raise_for_status()
        token = response.json()
        yield Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], session=session,
                         version=info["api_version"])
