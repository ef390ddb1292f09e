"""The password never shows: the suite's scenarios run with a distinctive password, and every
byte they printed (stdout, stderr, Meltano's logs at debug level, the catalog, STATE, --about)
is searched for it, for its Basic token and for the Authorization header."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest

from flowfinity_simulator.faults import Fault
from tests.harness.meltano import DEV_USERNAME, TAP, get_state, run_meltano

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

SECRET = "Canary-Pa55w0rd-7f3e1c"
WRONG = "Wrong-Canary-Pa55-91ab"


def forms(password: str) -> list[str]:
    token = base64.b64encode(f"{DEV_USERNAME}:{password}".encode()).decode()
    return [password, token, f"Basic {token}"]


FORBIDDEN = [*forms(SECRET), *forms(WRONG)]


class Transcript:
    """Runs commands and keeps everything they printed."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.texts: dict[str, str] = {}

    def tap(self, label, config, *args, stdin=None, debug=False):
        path = self.tmp_path / f"{label}.json"
        path.write_text(json.dumps(config))
        env = dict(os.environ)
        if debug:
            env["LOGLEVEL"] = "DEBUG"
        result = subprocess.run(
            [TAP, "--config", str(path), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            input=stdin,
        )
        self.texts[label] = result.stdout + result.stderr
        return result

    def add(self, label, text):
        self.texts[label] = text

    def assert_clean(self):
        assert len(self.texts) >= 10
        for label, text in self.texts.items():
            for secret in FORBIDDEN:
                assert secret not in text, f"{label} printed a secret ({secret[:6]}...)"


@pytest.mark.slow
def test_no_scenario_prints_the_password(simulator, meltano_env, tmp_path):
    simulator._password = SECRET  # the site's password is the canary
    views = [{"name": "leads", "url": simulator.view_url("leads")}]
    good = {"username": DEV_USERNAME, "password": SECRET, "views": views, "max_retries": 3}
    wrong = {**good, "password": WRONG}
    out = Transcript(tmp_path)

    about = out.tap("about", good, "--about", "--format=json")
    assert about.returncode == 0
    discovery = out.tap("discover", good, "--discover", debug=True)
    assert discovery.returncode == 0, discovery.stderr
    (tmp_path / "catalog.json").write_text(discovery.stdout)
    sync = out.tap("sync", good, "--catalog", str(tmp_path / "catalog.json"), debug=True)
    assert sync.returncode == 0 and '"STATE"' in sync.stdout, sync.stderr

    failing = out.tap("wrong password", wrong, debug=True)
    assert failing.returncode == 1 and "HTTP 401" in failing.stderr

    simulator.faults.add(Fault(kind="status", status=500, headers={"Retry-After": "0"}, times=2))
    retried = out.tap("500s then success", good, debug=True)
    assert retried.returncode == 0 and "HTTP 500" in retried.stderr, retried.stderr

    simulator.faults.add(Fault(kind="status", status=500, headers={"Retry-After": "0"}, times=None))
    exhausted = out.tap("500s exhausted", good)
    assert exhausted.returncode == 1 and "gave up" in exhausted.stderr
    simulator.faults.clear()

    html = Fault(kind="status", status=200, headers={"Content-Type": "text/html"}, times=None)
    html.body = f"<html><form>password for {DEV_USERNAME}</form></html>"
    simulator.faults.add(html)
    page = out.tap("html page", good)
    assert page.returncode == 1 and "HTML page" in page.stderr
    simulator.faults.clear()

    simulator.faults.add(Fault(kind="drop_after_bytes", after_bytes=900, times=1))
    cut = out.tap("truncated", good, debug=True)
    assert cut.returncode == 0, cut.stderr
    simulator.faults.clear()

    assert out.tap("doctor", good, "--test").returncode == 0
    assert out.tap("doctor, wrong password", wrong, "--test").returncode == 1

    run = run_meltano(
        ["--log-level=debug", "run", "tap-flowfinity", "target-postgres"],
        env={**meltano_env.as_env(), "TAP_FLOWFINITY_PASSWORD": SECRET},
        timeout=300,
    )
    out.add("meltano run", run.stdout + run.stderr)
    assert "leads" in run.stderr
    out.add("meltano state", json.dumps(get_state(env=meltano_env)))
    listing = run_meltano(
        ["config", "list", "tap-flowfinity"],
        env={**meltano_env.as_env(), "TAP_FLOWFINITY_PASSWORD": SECRET},
        timeout=120,
    )
    out.add("meltano config list", listing.stdout + listing.stderr)
    bad_run = run_meltano(
        ["run", "tap-flowfinity", "target-postgres"],
        env={**meltano_env.as_env(), "TAP_FLOWFINITY_PASSWORD": WRONG},
        check=False,
        timeout=300,
    )
    assert bad_run.returncode != 0
    out.add("meltano run, wrong password", bad_run.stdout + bad_run.stderr)

    out.assert_clean()
