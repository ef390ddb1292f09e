"""The README's state recipes, run exactly as written, and the job and schedule of meltano.yml."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.e2e.helpers import recipe, sync_cursors
from tests.harness.meltano import BIN_DIR, REPO_ROOT, get_bookmarks, run_meltano

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

LOOKBACK = 1000


def run_recipe(name: str, meltano_env, tmp_path) -> None:
    env = meltano_env.as_env()
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{env['PATH']}"
    env["MELTANO_PROJECT_ROOT"] = str(REPO_ROOT)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe(name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_backfill_and_reset_one_view_recipes(meltano_env, simulator, tmp_path):
    # A fresh project that should not read all history: start after an id.
    truth = sorted(int(r["lastSubmissionId"]) for r in simulator.truth("leads").values())
    start = truth[len(truth) // 2]
    meltano_env.extra["TAP_FLOWFINITY_START_LAST_SUBMISSION_ID"] = str(start)
    # The job of meltano.yml: the same state id as `meltano run tap-flowfinity target-postgres`.
    job = run_meltano(["run", "sync-flowfinity"], env=meltano_env, timeout=300)
    assert "view 'leads' done:" in job.stderr, job.stderr[-3000:]
    assert sync_cursors(simulator, "leads")[0] == start
    first = get_bookmarks(env=meltano_env)
    assert first["leads"]["replication_key_value"] == truth[-1]

    # Backfill leads from an id, as the README says (its id lies inside the demo data).
    simulator.clear_request_log()
    run_recipe("backfill-from-id", meltano_env, tmp_path)
    backfill_id = int(re.search(r'"replication_key_value": (\d+)', recipe("backfill-from-id"))[1])
    merged = get_bookmarks(env=meltano_env)
    assert merged["leads"]["replication_key_value"] == backfill_id
    assert merged["visits"] == first["visits"]
    run_meltano(["run", "tap-flowfinity", "target-postgres"], env=meltano_env)
    assert sync_cursors(simulator, "leads")[0] == backfill_id - LOOKBACK
    assert (
        sync_cursors(simulator, "visits")[0] == first["visits"]["replication_key_value"] - LOOKBACK
    )

    # Reset one view: leads starts over (here from start_last_submission_id), visits does not.
    simulator.clear_request_log()
    before = get_bookmarks(env=meltano_env)
    run_recipe("reset-one-view", meltano_env, tmp_path)
    after = get_bookmarks(env=meltano_env)
    assert "leads" not in after and after["visits"] == before["visits"]
    run_meltano(["run", "tap-flowfinity", "target-postgres"], env=meltano_env)
    assert sync_cursors(simulator, "leads")[0] == start
    assert (
        sync_cursors(simulator, "visits")[0] == before["visits"]["replication_key_value"] - LOOKBACK
    )
    assert get_bookmarks(env=meltano_env)["leads"]["replication_key_value"] == truth[-1]


def test_schedule_runs_the_job(meltano_env):
    listing = run_meltano(["schedule", "list", "--format=json"], env=meltano_env, timeout=120)
    schedules = json.loads(listing.stdout)["schedules"]["job"]
    schedule = next(s for s in schedules if s["name"] == "flowfinity-every-5-minutes")
    job = {"name": "sync-flowfinity", "tasks": ["tap-flowfinity target-postgres"]}
    assert schedule["job"] == job
    assert schedule["cron_interval"] == "*/5 * * * *"
