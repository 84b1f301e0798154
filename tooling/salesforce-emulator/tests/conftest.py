"""Fixtures for driving the emulator with simple-salesforce over real HTTPS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from simple_salesforce import Salesforce

from salesforce_emulator import Emulator
from salesforce_emulator.connection import fetch_token, https_session


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
