"""One ERP stand-in per session, reset to its seed data before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from stand_ins.erp import ErpServer

API_KEY = "erp-test-key-0123456789"


@pytest.fixture(scope="session")
def erp_server() -> Iterator[ErpServer]:
    with ErpServer(api_key=API_KEY) as erp:
        yield erp


@pytest.fixture
def erp(erp_server: ErpServer) -> Iterator[ErpServer]:
    erp_server.come_up()
    erp_server.reset()
    yield erp_server
    erp_server.come_up()
    erp_server.reset()


@pytest.fixture
def http(erp: ErpServer) -> Iterator[requests.Session]:
    """A client of the ERP API: base URL prefixed, API key sent, a timeout on every call."""

    class Client(requests.Session):
        def request(self, method, url, *args, **kwargs):  # type: ignore[override]
            kwargs.setdefault("timeout", 5)
            return super().request(method, erp.url + url, *args, **kwargs)

    with Client() as session:
        session.headers["X-Api-Key"] = API_KEY
        yield session
