"""The package on its own: built into a wheel, installed into an empty directory and run from outside the
repository, it must serve the start-up contract, an OAuth token and a query (nothing read from the source tree)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import requests

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # tooling/salesforce-emulator
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--quiet"]


def build_wheel(tmp_path: Path) -> Path:
    # A copy of the package directory is built, so the build's output (build/, *.egg-info) never lands in the
    # source tree, and so anything the package reads from outside its own directory would be missing.
    source = shutil.copytree(PACKAGE_DIR, tmp_path / "source",
                             ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist"))
    subprocess.run([*PIP, "wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(tmp_path / "dist")],
                   check=True, cwd=tmp_path, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("salesforce_emulator-*.whl")
    return wheel


def test_the_wheel_installs_and_serves_from_outside_the_repository(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    assert "salesforce_emulator/schema.toml" in names
    assert not any(name.startswith("tests/") for name in names)
    (entry_points,) = (name for name in names if name.endswith(".dist-info/entry_points.txt"))
    assert "salesforce-emulator = salesforce_emulator.__main__:main" in archive.read(entry_points).decode()
    (metadata,) = (name for name in names if name.endswith(".dist-info/METADATA"))
    requires = [line for line in archive.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    assert any("defusedxml" in line for line in requires)  # every runtime import is a declared dependency

    site = tmp_path / "site"
    subprocess.run([*PIP, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    imports = tmp_path / "imports.log"  # -v: the interpreter names the file behind every import, on stderr
    with imports.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-v", "-m", "salesforce_emulator", "serve", "--port", "0"],
                                cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            line = proc.stdout.readline()
            assert line, imports.read_text()[-2000:]
            info = json.loads(line)
            session = requests.Session()
            session.trust_env = False  # REQUESTS_CA_BUNDLE must not replace the emulator's CA
            session.verify = info["ca_bundle"]
            token = session.post(f"{info['login_url']}/services/oauth2/token", timeout=10,
                                 data={"grant_type": "client_credentials", "client_id": info["client_id"],
                                       "client_secret": info["client_secret"]})
            assert token.status_code == 200, token.text
            query = session.get(f"{info['instance_url']}/services/data/v{info['api_version']}/query",
                                params={"q": "SELECT Id, Name FROM Pricebook2"}, timeout=10,
                                headers={"Authorization": f"Bearer {token.json()['access_token']}"})
            assert query.status_code == 200, query.text
            assert [r["Name"] for r in query.json()["records"]] == ["Standard Price Book"]
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
    assert proc.stdout.read() == ""  # exactly one line on stdout

    loaded = [line for line in imports.read_text().splitlines() if "salesforce_emulator" in line and ".py" in line]
    assert any(str(site / "salesforce_emulator" / "__main__.py") in line for line in loaded), loaded[:5]
    assert not [line for line in loaded if str(PACKAGE_DIR) in line]
