"""What a real Flowfinity site may send differently, synced end to end into PostgreSQL.

Each group switches several of the simulator's variants on at once (a site differs in more
than one way; grouping keeps the suite fast) and runs the plain CLI pipe
`tap-flowfinity --config c.json [--state s.json] | target-postgres`, without --catalog,
twice: a first sync, then inserts, updates, a transaction and a delete, then a sync resumed
from the state the target emitted. After each, the table equals the source; the resumed run
asks nothing without the cursor parameter, and its first request (discovery's sample)
carries the bookmark less the lookback.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from flowfinity_simulator import Simulator
from flowfinity_simulator.variants import Variants
from tests.e2e.helpers import assert_table_matches_truth, pipe_to_postgres
from tests.harness.meltano import DEV_PASSWORD, DEV_USERNAME, TAP, get_bookmarks, run_job

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

LOOKBACK = 1000
GROUPS = {
    # Key casing of cursor and state, transactions of 3 records sharing one id with a cap of
    # 4 per answer (answers end inside groups), 204 for nothing new, strict parameters and
    # a URL copied with the cursor parameter in it.
    "casing+equal-ids+cap+204+strict+url": (
        Variants(
            cursor_key="lastSubmissionID",
            state_key="state",
            records_per_submission=3,
            empty_answer="no_content",
            strict_params=True,
        ),
        4,
        "?PreviousLastSubmissionId=0",
    ),
    # An empty 200 (Content-Length: 0) and a byte-order mark on every JSON body.
    "empty-200+bom": (Variants(empty_answer="empty", bom=True), 0, ""),
    # The JSON literal null for nothing new, with a byte-order mark.
    "null+bom": (Variants(empty_answer="null", bom=True), 0, ""),
}


def leads_config(sim: Simulator, url_suffix: str = "") -> dict:
    return {
        "username": DEV_USERNAME,
        "password": DEV_PASSWORD,
        "views": [{"name": "leads", "url": sim.view_url("leads") + url_suffix}],
        "discovery_sample_size": 5,
    }


def change_the_source(sim: Simulator) -> None:
    sim.advance_counter(5000)  # other apps' submissions between two runs
    ids = sorted(sim.truth("leads"))
    sim.create("leads", {"FirstName": "Ada", "Region": "Nord"})  # a field discovery never saw
    sim.create_together("leads", [{"Company": "Group A"}, {"Company": "Group B"}])
    sim.update("leads", ids[2], {"Company": "Renamed Inc"})
    sim.delete("leads", ids[5])


@pytest.mark.parametrize("group", list(GROUPS))
def test_each_variant_syncs_into_postgres_equal_to_the_source(
    group, postgres, pg_database, tmp_path
):
    variants, cap, url_suffix = GROUPS[group]
    with Simulator(
        username=DEV_USERNAME,
        password=DEV_PASSWORD,
        demo_records=25,
        variants=variants,
        max_records_per_response=cap,
    ) as sim:
        config = leads_config(sim, url_suffix)
        state = pipe_to_postgres(config, postgres, pg_database, tmp_path)
        assert_table_matches_truth(postgres, pg_database, sim, "leads")
        assert all(not r["repeated"] for r in sim.requests), "a parameter was sent twice"
        assert all(r["status"] in (200, 204) for r in sim.requests), sim.requests

        bookmark = state["bookmarks"]["leads"]["replication_key_value"]
        change_the_source(sim)
        sim.clear_request_log()
        pipe_to_postgres(config, postgres, pg_database, tmp_path, state=state)

        assert_table_matches_truth(postgres, pg_database, sim, "leads")
        cursors = sim.cursor_requests("leads")
        assert cursors[0] == bookmark - LOOKBACK, "discovery samples from the bookmark"
        assert None not in cursors, "a resumed run never asks without the cursor"
        assert all(not r["repeated"] for r in sim.requests)


@pytest.mark.slow
def test_a_resumed_meltano_run_never_asks_from_scratch(simulator, meltano_env):
    """`meltano run` of this editable install discovers before every run (no catalog cache)."""
    run_job(meltano_env)
    bookmark = get_bookmarks(env=meltano_env)["leads"]["replication_key_value"]
    simulator.create("leads", {"FirstName": "Ada"})
    simulator.clear_request_log()
    run_job(meltano_env)
    cursors = simulator.cursor_requests("leads")
    assert cursors[0] == bookmark - LOOKBACK, cursors
    assert None not in cursors, cursors


def run_tap(config: dict, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [str(TAP), "--config", str(path), *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("variants", "says"),
    [
        (Variants(auth_scheme="NTLM"), ["NTLM authentication", "HTTP 401", "Basic"]),
        (Variants(auth_scheme="Negotiate"), ["Negotiate authentication", "Basic"]),
        (Variants(method="POST"), ["HTTP 405", "allows POST", "GET"]),
    ],
)
def test_what_the_tap_cannot_do_fails_in_one_line_naming_it(variants, says, tmp_path):
    with Simulator(username=DEV_USERNAME, password=DEV_PASSWORD, variants=variants) as sim:
        result = run_tap(leads_config(sim), tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith("tap-flowfinity: error: view 'leads': ")
    for word in says:
        assert word in errors[0], errors[0]
    assert '"type":"RECORD"' not in result.stdout.replace(" ", "")
    assert DEV_PASSWORD not in result.stdout + result.stderr


def test_discover_alone_starts_at_start_last_submission_id(tmp_path):
    with Simulator(username=DEV_USERNAME, password=DEV_PASSWORD) as sim:
        start = sorted(int(r["lastSubmissionId"]) for r in sim.truth("leads").values())[10]
        discovered = run_tap(
            {**leads_config(sim), "start_last_submission_id": start}, tmp_path, "--discover"
        )
        assert discovered.returncode == 0, discovered.stderr[-2000:]
        assert sim.cursor_requests("leads") == [start]
        catalog = json.loads(discovered.stdout)
        assert "FirstName" in catalog["streams"][0]["schema"]["properties"]


def test_a_view_without_the_state_field_is_warned_once(tmp_path):
    with Simulator(username=DEV_USERNAME, password=DEV_PASSWORD, demo_records=5) as sim:
        result = run_tap({**leads_config(sim), "state_field": "Status"}, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if "no record carried" in line]
    assert len(warnings) == 1, warnings
    assert "'Status'" in warnings[0] and "deleted records cannot be flagged" in warnings[0]
