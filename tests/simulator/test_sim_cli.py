"""`flowfinity-simulator` as a process: ready line, loopback only, clean exit on SIGTERM."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)


def test_ready_line_serves_and_exits_on_sigterm(tmp_path):
    ready_file = tmp_path / "ready.json"
    secret = "cli-secret-9"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flowfinity_simulator.cli",
            "--port",
            "0",
            "--demo-records",
            "5",
            "--ready-file",
            str(ready_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "FLOWFINITY_SIM_PASSWORD": secret},
        text=True,
    )
    try:
        line = proc.stdout.readline()
        info = json.loads(line)
        assert json.loads(ready_file.read_text()) == info
        assert set(info) == {"base_url", "views", "operations"}
        assert info["base_url"].startswith("http://127.0.0.1:")
        assert set(info["views"]) == {"leads", "visits"}
        assert secret not in line
        token = base64.b64encode(f"integration:{secret}".encode()).decode()
        request = urllib.request.Request(
            info["views"]["visits"], headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert len(json.loads(response.read())) == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert secret not in out + err


def test_refuses_a_non_loopback_host_without_the_flag():
    result = subprocess.run(
        [sys.executable, "-m", "flowfinity_simulator.cli", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
