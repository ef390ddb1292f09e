"""Views read in parallel, the real job killed mid-run: nothing lost, no bookmark ahead.

`meltano run tap-flowfinity target-postgres` syncs six views of a simulator whose answers
are slow (a delay before each answer, bodies dripped in small chunks), with
`max_parallel_views: 4`: while one stream is written, the next views are being read. Between
runs the source changes in every view (creates, updates, deletes); each run is stopped at a
moment after the target committed some of its rows (small batches, so each view's rows are
committed as they come), mostly by SIGKILL, sometimes SIGTERM, and the same command runs again.

Proves, after every stop and for every view: the bookmark Meltano stored is never beyond what
PostgreSQL holds (every version at or below it is in the table), and no RecordID is there
twice. At the end (one more run, to completion): every table equals its view, and every
bookmark is the view's newest submission id.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest

from flowfinity_simulator import Fault, Simulator
from tests.e2e.helpers import assert_table_matches_truth
from tests.e2e.run_checks import (
    RUN,
    SystemDatabase,
    bookmark_violations,
    duplicate_count,
    last_commit,
    log_tail,
    pg_rows,
    stop_group,
)
from tests.harness.meltano import MeltanoEnv, ensure_installed, run_job, start_meltano

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

SEED = 20_261_206
VIEWS = 6
RECORDS_PER_VIEW = 200
STOPS = 3
SIGTERM_SHARE = 0.3
# A run is stopped this many seconds after the target first committed rows of it.
STOP_AFTER_FIRST_COMMIT_S = (0.0, 1.5)
BATCH_ROWS = 25
# Every answer: a wait before the headers, then the body in 2 KiB chunks 10 ms apart.
SLOW = Fault("slow", delay=0.3, chunk_delay=0.01, chunk_bytes=2048, times=None)


def change_every_view(sim: Simulator, rng: random.Random) -> None:
    """New records in every view, and some updated or deleted (latest versions move up)."""
    for key in sim.view_keys():
        for _ in range(rng.randint(20, 60)):
            sim.create(key)
        ids = sorted(sim.truth(key))
        for record_id in rng.sample(ids, 8):
            if rng.random() < 0.25:
                sim.delete(key, record_id)
            else:
                sim.update(key, record_id, {"Summary": f"changed {rng.random():.6f}"})


def check_no_bookmark_ahead(postgres, dbname, sim, system_db) -> list[str]:
    problems = []
    for key in sim.view_keys():
        rows = pg_rows(postgres, dbname, key)
        if duplicate_count(rows):
            problems.append(f"{key}: {duplicate_count(rows)} RecordIDs twice")
        violations = bookmark_violations(system_db.bookmark(key), rows, sim.truth(key), set())
        problems += [f"{key}: {violation}" for violation in violations]
    return problems


def newest(sim: Simulator, key: str) -> int:
    return max(int(r["lastSubmissionId"]) for r in sim.truth(key).values())


def commits(postgres, dbname, sim) -> dict[str, str | None]:
    """When target-postgres last committed a batch to each view's table."""
    return {key: last_commit(postgres, dbname, key) for key in sim.view_keys()}


@pytest.mark.slow
def test_parallel_views_killed_mid_run_lose_nothing(postgres, pg_database, tmp_path):
    ensure_installed()
    rng = random.Random(SEED)
    with Simulator(extra_apps=VIEWS - 2, demo_records=RECORDS_PER_VIEW, seed=SEED) as sim:
        sim.faults.add(SLOW)
        env = MeltanoEnv(
            pg=postgres,
            dbname=pg_database,
            sim_port=sim.port,
            views=[{"name": key, "url": sim.view_url(key)} for key in sim.view_keys()],
            home=tmp_path / "meltano",
            extra={
                "TAP_FLOWFINITY_MAX_PARALLEL_VIEWS": "4",
                # Small batches: the target commits each view's rows as they come, so a stop
                # lands after some views' rows are in PostgreSQL and before others'.
                "TARGET_POSTGRES_BATCH_SIZE_ROWS": str(BATCH_ROWS),
            },
        )
        system_db = SystemDatabase.of_home(env.home)
        first = run_job(env)
        assert first.returncode == 0, log_tail(first.stderr)
        assert f"Reading {VIEWS} views, up to 4 at once" in first.stderr
        problems: list[str] = []
        stops: dict[str, int] = {}
        completed = 0
        mid_load = 0  # stops after some views' rows of the run were committed, not all
        while sum(stops.values()) < STOPS:
            change_every_view(sim, rng)
            before = commits(postgres, pg_database, sim)
            proc = start_meltano(RUN, env)
            deadline = time.monotonic() + 300
            stop_at: float | None = None
            while True:
                try:
                    proc.communicate(timeout=0.2)  # reads the pipes, so the run never blocks
                except subprocess.TimeoutExpired:
                    pass
                else:
                    break
                assert time.monotonic() < deadline, "a run did not end in 300s"
                if stop_at is None and commits(postgres, pg_database, sim) != before:
                    stop_at = time.monotonic() + rng.uniform(*STOP_AFTER_FIRST_COMMIT_S)
                if stop_at is not None and time.monotonic() >= stop_at:
                    break
            if proc.returncode is not None:
                completed += 1  # ended before the stop: a complete run is fine too
                assert completed <= 2 * STOPS, "the runs end before any stop lands"
                continue
            sig = signal.SIGTERM if rng.random() < SIGTERM_SHARE else signal.SIGKILL
            stop_group(proc, sig)
            stops[sig.name] = stops.get(sig.name, 0) + 1
            system_db.let_dead_runs_go_stale()
            after = commits(postgres, pg_database, sim)
            loaded = [key for key in sim.view_keys() if after[key] != before[key]]
            if loaded and len(loaded) < VIEWS:
                mid_load += 1
            problems += check_no_bookmark_ahead(postgres, pg_database, sim, system_db)
        assert not problems, problems[:5]
        print(f"stops {stops}, completed {completed}, stopped between views' loads {mid_load}")
        assert mid_load, "no stop landed after some views' rows were committed and before all"

        last = run_job(env)
        assert last.returncode == 0, log_tail(last.stderr)
        for key in sim.view_keys():
            assert_table_matches_truth(postgres, pg_database, sim, key)
            assert system_db.bookmark(key) == newest(sim, key), key
