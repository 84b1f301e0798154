"""``python -m stand_ins.erp serve``: one JSON line when ready, then serve until a signal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

CWD = Path(tempfile.gettempdir())  # outside the source tree: the installed package is what runs


def test_serve_prints_one_json_line_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "stand_ins.erp", "serve", "--port", "0", "--api-key", "k1"],
                            cwd=CWD, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        info = json.loads(line)
        assert info["url"].startswith("http://127.0.0.1:")
        assert info["control_url"] == info["url"] + "/__control"
        response = requests.get(info["url"] + "/inventory/items/SKU-1005", headers={"X-Api-Key": "k1"}, timeout=5)
        assert response.json()["available"] == 460
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert proc.stdout.read() == ""


def test_port_in_use_is_a_one_line_error():
    with subprocess.Popen([sys.executable, "-m", "stand_ins.erp", "serve", "--port", "0"], cwd=CWD,
                          stdout=subprocess.PIPE, text=True) as first:
        try:
            port = json.loads(first.stdout.readline())["url"].rsplit(":", 1)[1]
            second = subprocess.run([sys.executable, "-m", "stand_ins.erp", "serve", "--port", port], cwd=CWD,
                                    capture_output=True, text=True, timeout=10, check=False)
            assert second.returncode == 1
            assert second.stderr.startswith("erp stand-in failed to start")
            assert "Traceback" not in second.stderr
        finally:
            first.send_signal(signal.SIGTERM)
            first.wait(timeout=10)
