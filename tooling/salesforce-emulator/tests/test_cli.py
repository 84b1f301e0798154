"""The start-up contract other tools depend on: one JSON line, then serve until a signal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from simple_salesforce import Salesforce

from salesforce_emulator.connection import fetch_token, https_session

CONTRACT_KEYS = {"instance_url", "login_url", "ca_bundle", "client_id", "client_secret", "username",
                 "private_key_file", "api_version"}


def start(*args: str) -> tuple[subprocess.Popen, dict]:
    # from outside any source tree: the installed package is what runs, nothing read relative to the cwd
    proc = subprocess.Popen([sys.executable, "-m", "salesforce_emulator", "serve", "--port", "0", *args],
                            cwd=tempfile.gettempdir(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return proc, json.loads(line)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == 0
    assert proc.stdout.read() == ""  # exactly one line on stdout


def test_serve_prints_the_contract_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc, info = start("--state-dir", str(tmp_path))
    try:
        assert set(info) >= CONTRACT_KEYS
        assert info["instance_url"].startswith("https://127.0.0.1:")
        assert Path(info["ca_bundle"]).is_file()
        assert Path(info["private_key_file"]).is_file()
        session = https_session(info)
        sf = Salesforce(instance_url=info["instance_url"], session_id=fetch_token(info, session), session=session)
        account_id = sf.Account.create({"Name": "Survives restarts", "ERP_Customer_Id__c": "KEEP-1"})["id"]
    finally:
        stop(proc)

    proc, again = start("--state-dir", str(tmp_path))
    try:
        assert again["client_id"] == info["client_id"]
        assert again["ca_bundle"] == info["ca_bundle"]
        session = https_session(again)
        sf = Salesforce(instance_url=again["instance_url"], session_id=fetch_token(again, session), session=session)
        assert sf.Account.get_by_custom_id("ERP_Customer_Id__c", "KEEP-1")["Id"] == account_id
        # new ids never collide with the ones issued before the restart
        assert sf.Account.create({"Name": "After restart"})["id"] != account_id
    finally:
        stop(proc, signal.SIGINT)


def test_in_memory_when_no_state_dir() -> None:
    proc, info = start()
    try:
        session = https_session(info)
        assert session.get(f"{info['instance_url']}/services/data/", timeout=5).status_code == 200
    finally:
        stop(proc)


def test_bad_schema_file_fails_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[objects.Thing__c]\nkey_prefix = "a09"\n[objects.Thing__c.fields]\nX__c = { type = "blob" }\n')
    proc = subprocess.run([sys.executable, "-m", "salesforce_emulator", "serve", "--schema", str(bad)],
                          cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Thing__c.X__c: type must be one of" in proc.stderr
    assert "Traceback" not in proc.stderr
