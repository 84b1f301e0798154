"""Fault injection, the request log and the daily API allocation, as clients experience them."""

from __future__ import annotations

import pytest
import requests
from simple_salesforce import Salesforce, SalesforceExpiredSession, SalesforceGeneralError, SalesforceMalformedRequest
from simple_salesforce.exceptions import SalesforceRefusedRequest

from salesforce_emulator import Emulator


def api_calls(emu: Emulator) -> list[tuple[str, str, int]]:
    return [(r["method"], r["path"], r["status"]) for r in emu.requests() if r["path"].startswith("/services/data/v")]


def test_503_then_recovery(emu: Emulator, sf: Salesforce) -> None:
    emu.inject("503", count=2, path=r"/sobjects/Account")
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as failed:
            sf.Account.create({"Name": "Unlucky"})
        assert failed.value.status == 503
        assert failed.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert sf.Account.create({"Name": "Lucky"})["success"] is True
    assert [status for *_, status in api_calls(emu)] == [503, 503, 201]
    assert sf.query("SELECT COUNT() FROM Account WHERE Name = 'Unlucky'")["totalSize"] == 0


def test_unable_to_lock_row_and_request_limit(emu: Emulator, sf: Salesforce) -> None:
    emu.inject("UNABLE_TO_LOCK_ROW", method="PATCH")
    account_id = sf.Account.create({"Name": "Locked"})["id"]
    with pytest.raises(SalesforceMalformedRequest) as locked:
        sf.Account.update(account_id, {"Name": "x"})
    assert locked.value.content[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    emu.inject("REQUEST_LIMIT_EXCEEDED")
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.Account.get(account_id)
    assert refused.value.status == 403
    assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert sf.Account.get(account_id)["Name"] == "Locked"


def test_injected_invalid_session(emu: Emulator, sf: Salesforce) -> None:
    emu.inject("INVALID_SESSION_ID")
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert sf.query("SELECT Id FROM Account LIMIT 1")["done"] is True


def test_delay_and_dropped_connection(emu: Emulator, sf: Salesforce, session: requests.Session) -> None:
    emu.inject("delay", delay_seconds=0.6, path=r"/limits")
    url = f"{sf.base_url}limits"
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(url, headers=sf.headers, timeout=(5, 0.2))
    emu.inject("drop", path=r"/limits")
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url, headers=sf.headers, timeout=5)
    assert session.get(url, headers=sf.headers, timeout=5).status_code == 200


def test_faults_match_method_and_path_only(emu: Emulator, sf: Salesforce) -> None:
    emu.inject("503", method="DELETE", path=r"/sobjects/Contact/")
    contact_id = sf.Contact.create({"LastName": "Spared"})["id"]
    sf.Account.create({"Name": "Spared too"})
    with pytest.raises(SalesforceGeneralError):
        sf.Contact.delete(contact_id)
    assert sf.Contact.delete(contact_id) == 204


def test_request_log_counts_api_calls_and_names_the_caller(emu: Emulator, sf: Salesforce) -> None:
    sf.Account.create({"Name": "Counted"})
    sf.query("SELECT Id FROM Account LIMIT 1")
    assert [(m, s) for m, _p, s in api_calls(emu)] == [("POST", 201), ("GET", 200)]
    callers = {r["user_id"] for r in emu.requests() if r["path"].startswith("/services/data/v")}
    assert callers == {emu.app.integration_user_id}


def test_limit_info_header_counts_and_allocation_is_enforced(emu: Emulator, sf: Salesforce) -> None:
    emu.set_api_usage(10, 12)
    resp = sf.session.get(f"{sf.base_url}limits", headers=sf.headers, timeout=5)
    assert resp.headers["Sforce-Limit-Info"] == "api-usage=11/12"
    assert resp.json()["DailyApiRequests"] == {"Max": 12, "Remaining": 1}
    sf.query("SELECT Id FROM Account LIMIT 1")
    assert sf.api_usage["api-usage"].used == 12
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert refused.value.content == [{"message": "TotalRequests Limit exceeded.",
                                      "errorCode": "REQUEST_LIMIT_EXCEEDED", "fields": []}]
    assert emu.api_usage() == (12, 12)  # refused calls are not counted


def test_control_plane_over_http(emu: Emulator, session: requests.Session, sf: Salesforce) -> None:
    control = emu.info["control_url"]
    created = session.post(f"{control}/faults", json={"kind": "503", "count": 1, "path": "/limits"}, timeout=5)
    assert created.status_code == 201
    assert session.get(f"{control}/faults", timeout=5).json()[0]["remaining"] == 1
    assert session.get(f"{sf.base_url}limits", headers=sf.headers, timeout=5).status_code == 503
    bad = session.post(f"{control}/faults", json={"kind": "meteor"}, timeout=5)
    assert bad.status_code == 400
    assert session.put(f"{control}/api-usage", json={"used": 5}, timeout=5).json()["used"] == 5
    log = session.get(f"{control}/requests", timeout=5).json()
    assert log[-1]["status"] == 503
    assert session.post(f"{control}/tokens/expire", timeout=5).json()["expired"] >= 1
    assert session.get(f"{sf.base_url}limits", headers=sf.headers, timeout=5).status_code == 401


def test_python_api_rejects_bad_faults(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        emu.inject("meteor")
    with pytest.raises(ValueError, match="delay_seconds"):
        emu.inject("delay")


def test_an_internal_error_is_opaque(emu: Emulator, sf: Salesforce, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the emulator answers Salesforce's opaque 500, never a traceback."""

    def explode(req):
        raise RuntimeError("secret internals")

    router = emu.app.router
    monkeypatch.setattr(router, "_routes", list(router._routes))
    router.api("GET", "boom", explode)
    resp = sf.session.get(f"{sf.base_url}boom", headers=sf.headers, timeout=5)
    assert resp.status_code == 500
    assert resp.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    assert "secret internals" not in resp.text
    assert "Traceback" not in resp.text
