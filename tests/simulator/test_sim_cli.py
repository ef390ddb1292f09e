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

CLI = [sys.executable, "-m", "flowfinity_simulator.cli"]


def run_cli(*args):
    """One command of the simulator's CLI, run to its end."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30)


def start_server(ready_file, *args, env=None):
    """The simulator served by its CLI on a free port, 5 demo records a view."""
    return subprocess.Popen(
        [*CLI, "--port", "0", "--demo-records", "5", *args, "--ready-file", str(ready_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )


def test_ready_line_serves_and_exits_on_sigterm(tmp_path):
    ready_file = tmp_path / "ready.json"
    secret = "cli-secret-9"
    proc = start_server(ready_file, env={**os.environ, "FLOWFINITY_SIM_PASSWORD": secret})
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
    result = run_cli("--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "loopback" in result.stderr


def control_get(base_url, path):
    with urllib.request.urlopen(base_url + path, timeout=5) as response:
        return json.loads(response.read())


def test_commands_purge_leave_enter_and_gone_on_a_running_simulator(tmp_path):
    ready_file = tmp_path / "ready.json"
    server = start_server(ready_file, "--delete-operation", "purge")
    try:
        base = json.loads(server.stdout.readline())["base_url"]
        assert control_get(base, "/_sim/variants")["delete_operation"] == "purge"
        truth = control_get(base, "/_sim/truth/leads")
        first, second = sorted(truth)[:2]

        purged = run_cli("purge", "--url", base, "leads", first)
        assert purged.returncode == 0, purged.stderr
        assert json.loads(purged.stdout) == truth[first]
        left = run_cli("leave", "--url", base, "--fields", '{"Region": "East"}', "leads", second)
        assert left.returncode == 0, left.stderr
        assert json.loads(left.stdout)["Region"] == "East"
        assert set(control_get(base, "/_sim/truth/leads")) == set(truth) - {first, second}
        gone = run_cli("gone", "--url", base, "leads")
        assert gone.returncode == 0 and json.loads(gone.stdout) == sorted([first, second])

        entered = run_cli("enter", "--url", base, "leads", second)
        assert entered.returncode == 0, entered.stderr
        back = json.loads(entered.stdout)
        assert int(back["lastSubmissionId"]) > int(json.loads(left.stdout)["lastSubmissionId"])
        assert control_get(base, "/_sim/truth/leads")[second] == back
        assert json.loads(run_cli("gone", "--url", base, "leads").stdout) == [first]

        again = run_cli("purge", "--url", base, "leads", first)
        assert again.returncode == 1 and again.stdout == ""
        assert again.stderr.count("\n") == 1 and "was purged" in again.stderr
        assert "HTTP 404" in again.stderr
        not_out = run_cli("enter", "--url", base, "leads", second)
        assert not_out.returncode == 1 and "not outside" in not_out.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=10)
    assert server.returncode == 0, err
    unreachable = run_cli("gone", "--url", base, "--timeout", "2", "leads")
    assert unreachable.returncode == 1 and "cannot reach a simulator" in unreachable.stderr
    bad = run_cli("leave", "--url", base, "--fields", "[1]", "leads", first)
    assert bad.returncode == 2 and "JSON object" in bad.stderr
