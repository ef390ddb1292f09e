"""`tap-flowfinity --capture` and `flowfinity-simulator --replay`: a site reproduced offline.

- Round trip: a capture of a site with every variant switched on (key casing, equal ids
  under a cap, 204 for nothing new, a byte-order mark, strict parameters, a URL carrying
  the cursor parameter), replayed, syncs to exactly the messages the site itself gives.
- A masked capture holds none of the source's free-text values, keeps what the tap and a
  maintainer need (field names and order, RecordID, cursor, state, structure, shapes), and
  still replays into a sync of the same records.
- Credentials a site sends in response headers (cookies, tokens) stay out of the capture,
  masked or verbatim.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from flowfinity_simulator import Simulator
from flowfinity_simulator.replay import Capture
from flowfinity_simulator.variants import Variants
from tests.harness.meltano import DEV_PASSWORD, DEV_USERNAME, TAP, run_meltano
from tests.harness.singer_clocks import without_clocks

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

EVERY_VARIANT = Variants(
    cursor_key="lastSubmissionID",
    state_key="state",
    records_per_submission=3,
    empty_answer="no_content",
    bom=True,
    strict_params=True,
)
FREE_TEXT = ("FirstName", "LastName", "Company", "EmailAddress", "BusinessPhone", "MobilePhone")


def config_file(tmp_path: Path, sim: Simulator, suffix: str = "", **settings) -> Path:
    path = tmp_path / f"config-{sim.port}.json"
    views = [{"name": key, "url": sim.view_url(key) + suffix} for key in sim.view_keys()]
    path.write_text(
        json.dumps({"username": DEV_USERNAME, "password": DEV_PASSWORD, "views": views, **settings})
    )
    return path


def tap(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(TAP), "--config", str(config), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def sync(config: Path) -> list[dict]:
    """The sync's messages, without what differs between two runs of the same data."""
    messages = []
    for message in without_clocks(json.loads(line) for line in tap(config).stdout.splitlines()):
        if message["type"] == "RECORD":
            deleted = message["record"].pop("_sdc_deleted_at")
            message["record"]["deleted"] = deleted is not None
        messages.append(message)
    return messages


def replay(capture: Path) -> Simulator:
    return Simulator(username=DEV_USERNAME, password=DEV_PASSWORD, replay=Capture.load(capture))


def test_a_capture_of_every_variant_replays_to_the_same_sync(tmp_path):
    with Simulator(
        username=DEV_USERNAME,
        password=DEV_PASSWORD,
        demo_records=24,
        variants=EVERY_VARIANT,
        max_records_per_response=4,
    ) as site:
        site.delete("leads", sorted(site.truth("leads"))[4])
        config = config_file(tmp_path, site, "?PreviousLastSubmissionId=0")
        original = sync(config)
        capture = tmp_path / "capture.json"
        tap(config, "--capture", str(capture), "--capture-records", "1000", "--capture-verbatim")

    document = json.loads(capture.read_text())
    leads = next(v for v in document["views"] if v["name"] == "leads")
    assert leads["cursor_key"] == "lastSubmissionID" and leads["state_key"] == "state"
    assert leads["empty_answer"] == "no_content" and leads["cap"] == 4
    assert all(r["bom"] for r in leads["requests"] if r["status"] == 200)
    assert "PreviousLastSubmissionId=0" not in json.dumps(leads["requests"])
    assert DEV_PASSWORD not in capture.read_text()
    assert "authorization" not in capture.read_text().lower()

    with replay(capture) as replayed:
        assert replayed.view_keys() == ["leads", "visits"]
        assert sync(config_file(tmp_path, replayed)) == original
        answers = [r for r in replayed.requests if r.get("view") == "leads"]
        assert max(r["records_sent"] for r in answers) == 4, "the captured cap"
        # The captured framing: a BOM before the array, 204 for nothing new, the key casing.
        url, auth = replayed.view_url("leads"), (DEV_USERNAME, DEV_PASSWORD)
        first = requests.get(url, auth=auth, timeout=10)
        assert first.content.startswith(b"\xef\xbb\xbf[") and b'"lastSubmissionID"' in first.content
        newest = max(int(r["lastSubmissionId"]) for r in replayed.truth("leads").values())
        after = requests.get(url, params={"PreviousLastSubmissionId": newest}, auth=auth)
        assert after.status_code == 204


# Response headers that carry credentials or session state, each with a value to look for.
CREDENTIAL_HEADERS = {
    "Set-Cookie": "ASP.NET_SessionId=set-cookie-value-41; path=/; HttpOnly",
    "Set-Cookie2": "LegacySession=set-cookie2-value-42",
    "Cookie": "FlowfinityAuth=cookie-value-43",
    "Authorization": "Bearer authorization-value-44",
    "Proxy-Authorization": "Basic proxy-authorization-value-45",
}


@pytest.mark.parametrize("masking", [[], ["--capture-verbatim"]], ids=["masked", "verbatim"])
def test_credentials_a_site_sends_in_headers_stay_out_of_the_capture(tmp_path, masking):
    """A site (or a proxy before it) may answer with session cookies or tokens; the capture
    keeps the other headers, even verbatim, and never these."""
    harmless = {"X-Powered-By": "ASP.NET"}
    with Simulator(
        username=DEV_USERNAME,
        password=DEV_PASSWORD,
        demo_records=5,
        variants=Variants(headers={**CREDENTIAL_HEADERS, **harmless}),
    ) as site:
        capture = tmp_path / "capture.json"
        tap(config_file(tmp_path, site), "--capture", str(capture), *masking)

    text = capture.read_text()
    requests_seen = [r for view in json.loads(text)["views"] for r in view["requests"]]
    assert requests_seen and all(r["status"] == 200 for r in requests_seen)
    for request in requests_seen:
        assert request["headers"]["X-Powered-By"] == "ASP.NET", "the other headers are kept"
        kept = {name.lower() for name in request["headers"]}
        assert not kept & {name.lower() for name in CREDENTIAL_HEADERS}, request["headers"]
    for name, value in CREDENTIAL_HEADERS.items():
        secret = re.search(r"[a-z0-9-]+-value-\d+", value)
        assert secret and secret.group() not in text, name


def test_a_masked_capture_holds_no_free_text_and_still_replays(tmp_path):
    with Simulator(username=DEV_USERNAME, password=DEV_PASSWORD, demo_records=25) as site:
        site.create("leads", {"Summary": "Call Mrs Example on her private line 0176-5550199"})
        site.delete("leads", sorted(site.truth("leads"))[0])
        truth = site.truth("leads")
        config = config_file(tmp_path, site)
        original = sync(config)
        capture = tmp_path / "masked.json"
        result = tap(config, "--capture", str(capture))
    assert "attach it to a bug report" in result.stderr
    text = capture.read_text()

    source = {str(r[f]) for r in truth.values() for f in (*FREE_TEXT, "Summary", "CreatedBy")}
    strings = set(re.findall(r'"((?:[^"\\]|\\.)*)"', text))
    assert not source & strings, sorted(source & strings)[:5]
    for value in source:
        if len(value) >= 6:
            assert value not in text, value
    assert "127.0.0.1" not in text, "the site's host is masked"

    leads = next(v for v in json.loads(text)["views"] if v["name"] == "leads")
    for record, captured in zip(
        sorted(truth.values(), key=lambda r: int(r["lastSubmissionId"])),
        leads["records"],
        strict=True,
    ):
        assert list(captured) == list(record), "field names and order kept"
        for key in ("RecordID", "lastSubmissionId", "State"):
            assert captured[key] == record[key]
        assert captured["Industry"].keys() == {"Selection"}
        assert re.fullmatch(r"\d+", captured["EmployeeCount"]), "a number as text stays one"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT04:37:30\.000", captured["CreatedOn"])
        assert len(captured["EmailAddress"]) == len(record["EmailAddress"])
        assert captured["EmailAddress"].count("@") == 1

    with replay(capture) as replayed:
        masked = sync(config_file(tmp_path, replayed))

    def shape(messages):
        return [
            (m["record"]["RecordID"], m["record"]["lastSubmissionId"], m["record"]["deleted"])
            for m in messages
            if m["type"] == "RECORD"
        ]

    assert shape(masked) == shape(original)


def test_the_simulator_command_serves_a_capture(tmp_path):
    with Simulator(username=DEV_USERNAME, password=DEV_PASSWORD, demo_records=5) as site:
        capture = tmp_path / "capture.json"
        tap(config_file(tmp_path, site), "--capture", str(capture))
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "flowfinity_simulator.cli", "--port", "0"),
            *("--password", DEV_PASSWORD, "--replay", str(capture), "--ready-file", str(ready)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        assert set(info["views"]) == {"leads", "visits"}
        assert info["views"]["leads"].endswith("/LeadRegistration/views/LeadsSync")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_meltano_invoke_captures_with_the_projects_settings(simulator, meltano_env, tmp_path):
    capture = tmp_path / "meltano-capture.json"
    result = run_meltano(
        ["invoke", "tap-flowfinity", "--capture", str(capture), "--capture-records", "10"],
        env=meltano_env,
        timeout=180,
    )
    assert "capture written to" in result.stderr
    document = json.loads(capture.read_text())
    assert document["masked"] is True
    assert [len(v["records"]) for v in document["views"]] == [10, 10]
