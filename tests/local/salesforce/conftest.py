"""Fixtures for driving the emulator with simple-salesforce over real HTTPS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from simple_salesforce import Salesforce

from local.salesforce import Emulator


def https_session(info: dict) -> requests.Session:
    """A session that verifies the emulator's certificate against its CA bundle.

    ``trust_env`` is off because requests lets REQUESTS_CA_BUNDLE (set on many machines) override
    ``session.verify``; verification itself stays on.
    """
    session = requests.Session()
    session.verify = info["ca_bundle"]
    session.trust_env = False
    return session


def fetch_token(info: dict, session: requests.Session) -> str:
    resp = session.post(f"{info['login_url']}/services/oauth2/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": info["client_id"], "client_secret": info["client_secret"]})
    resp.raise_for_status()
    return resp.json()["access_token"]


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def emu(emulator: Emulator) -> Iterator[Emulator]:
    """The shared emulator with faults, the request log and the API counter reset for each test."""
    emulator.clear_faults()
    emulator.clear_requests()
    emulator.set_api_usage(0, 15000)
    yield emulator
    emulator.clear_faults()


@pytest.fixture
def session(emu: Emulator) -> requests.Session:
    return https_session(emu.info)


@pytest.fixture
def sf(emu: Emulator, session: requests.Session) -> Salesforce:
    """A simple-salesforce client built from an access token, as the project's layer builds them."""
    info = emu.info
    return Salesforce(instance_url=info["instance_url"], session_id=fetch_token(info, session), session=session,
                      version=info["api_version"])
