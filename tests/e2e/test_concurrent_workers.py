"""Scale out: one worker per view, two `meltano run`s at once, sharing a PostgreSQL-backed
Meltano system database, each killed mid-run and resumed.

How an orchestrator fans views out (README "Scaling"): every worker runs the same command
with its own view (TAP_FLOWFINITY_VIEWS), its own state ID (`--state-id-suffix <view>`), and
its own Meltano run directory (MELTANO_SYS_DIR_ROOT, as a container or checkout per worker
has), while MELTANO_DATABASE_URI points every worker at one PostgreSQL system database.
The run directory matters: Meltano writes each plugin's catalog and config under
`.meltano/run/<plugin>/`, so two runs of one plugin from one directory race on those files.

Proves: both workers' first syncs load their views concurrently; killed (SIGKILL, the whole
process group) in the middle of their next run, each resumes with `--force` (the killed
job's record says "running" until Meltano's 5-minute staleness timeout) from its own stored
bookmark, less the lookback, never from another worker's; the tables end equal to the
simulator's truth, every record once.
"""

from __future__ import annotations

import time
import uuid

import pytest

from flowfinity_simulator import Fault, Simulator
from tests.conftest import stream_name
from tests.e2e.helpers import assert_table_matches_truth, sync_cursors
from tests.harness.meltano import (
    DEV_PASSWORD,
    DEV_USERNAME,
    REPO_ROOT,
    MeltanoEnv,
    error_lines,
    get_bookmarks,
    kill_group,
    run_meltano,
    start_meltano,
)

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

STATE_BASE = "dev:tap-flowfinity-to-target-postgres"
LOOKBACK = 1000
TARGET_SCHEMA = "flowfinity"  # meltano.yml's default_target_schema


@pytest.fixture
def big_simulator():
    """Both demo apps with a few hundred records, so a slowed run can be killed midway."""
    with Simulator(
        username=DEV_USERNAME,
        password=DEV_PASSWORD,
        host="127.0.0.1",
        port=0,
        demo_records=300,
        seed=5,
    ) as sim:
        yield sim


@pytest.fixture
def system_db(postgres):
    """A PostgreSQL database for Meltano's system tables (state), shared by the workers."""
    name = f"meltano_{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)
    try:
        yield name
    finally:
        postgres.drop_database(name)


def worker_env(postgres, pg_database, system_db, simulator, view_key, tmp_path):
    """One worker: one view, its own run directory, the shared system database."""
    home = tmp_path / f"worker-{view_key}"
    sys_dir = home / "sys"
    sys_dir.mkdir(parents=True)
    for kind in ("extractors", "loaders"):  # the installed plugins, shared read-only
        (sys_dir / kind).symlink_to(REPO_ROOT / ".meltano" / kind)
    info = postgres._require()
    uri = f"postgresql+psycopg://{info.user}:{info.password}@{info.host}:{info.port}/{system_db}"
    return MeltanoEnv(
        pg=postgres,
        dbname=pg_database,
        views=[{"name": stream_name(view_key), "url": simulator.view_url(view_key)}],
        sim_port=int(simulator.base_url.rsplit(":", 1)[1]),
        home=home,
        extra={"MELTANO_SYS_DIR_ROOT": str(sys_dir), "MELTANO_DATABASE_URI": uri},
    )


JOB = ["tap-flowfinity", "target-postgres"]
SYSTEM_FIELDS = {"RecordID", "lastSubmissionId", "State", "CreatedBy", "CreatedOn"}


def editable_field(record):
    return next(k for k, v in record.items() if isinstance(v, str) and k not in SYSTEM_FIELDS)


def run_both(envs, *extra_args, timeout=300):
    procs = {
        key: start_meltano(["run", *extra_args, "--state-id-suffix", key, *JOB], env)
        for key, env in envs.items()
    }
    results = {}
    for key, proc in procs.items():
        _out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"worker {key} exited {proc.returncode}:\n{error_lines(err)}"
        results[key] = err
    return results


@pytest.mark.slow
def test_two_workers_share_state_db_and_resume_after_kill(
    big_simulator, postgres, pg_database, system_db, tmp_path
):
    sim = big_simulator
    keys = sim.view_keys()
    assert len(keys) == 2
    envs = {k: worker_env(postgres, pg_database, system_db, sim, k, tmp_path) for k in keys}

    # 0. As README "Scaling" says, once before the first fan-out: the system tables and the
    # target schema. Two first runs would race on Meltano's migration, and target-postgres's
    # check-then-create of the schema lets two first runs both try to create it.
    run_meltano(["state", "list"], envs[keys[0]], timeout=120)
    postgres.execute(f"CREATE SCHEMA IF NOT EXISTS {TARGET_SCHEMA}", pg_database)

    # 1. First syncs, concurrently.
    run_both(envs)
    first = {}
    for key in keys:
        assert_table_matches_truth(postgres, pg_database, sim, key, stream_name(key))
        bookmarks = get_bookmarks(f"{STATE_BASE}:{key}", envs[key])
        assert set(bookmarks) == {stream_name(key)}, "each worker stores only its own view"
        first[key] = bookmarks[stream_name(key)]["replication_key_value"]
    # Both state IDs live in the one PostgreSQL system database.
    stored = {r[0] for r in postgres.query("select state_id from state", system_db)}
    assert {f"{STATE_BASE}:{k}" for k in keys} <= stored

    # 2. New work for both, served slowly; kill both workers in the middle of it.
    sim.advance_counter(5000)
    for key in keys:
        for _ in range(40):
            sim.create(key)
        updated = sim.truth(key)[sorted(sim.truth(key))[5]]
        sim.update(key, updated["RecordID"], {editable_field(updated): "Changed by a user"})
        sim.delete(key, sorted(sim.truth(key))[7])
    sim.faults.add(Fault(kind="slow", chunk_delay=0.05, chunk_bytes=1024, times=None))
    sim.clear_request_log()
    procs = {
        key: start_meltano(["run", "--state-id-suffix", key, *JOB], env)
        for key, env in envs.items()
    }
    deadline = time.monotonic() + 120
    alive = dict(procs)
    while alive and time.monotonic() < deadline:  # kill each one as soon as it syncs
        for key in [k for k in alive if any(r["cursor"] for r in sim.view_requests(k))]:
            proc = alive.pop(key)
            kill_group(proc)
            proc.communicate(timeout=60)
            assert proc.returncode != 0, f"worker {key} finished before the kill"
        time.sleep(0.05)
    assert not alive, f"workers {sorted(alive)} never reached their sync request"
    for key in keys:
        stored_now = get_bookmarks(f"{STATE_BASE}:{key}", envs[key])[stream_name(key)]
        assert stored_now["replication_key_value"] >= first[key], "a bookmark never goes back"

    # 3. Resume both, concurrently, at full speed.
    sim.faults.clear()
    sim.clear_request_log()
    resumed_from = {
        k: get_bookmarks(f"{STATE_BASE}:{k}", envs[k])[stream_name(k)]["replication_key_value"]
        for k in keys
    }
    run_both(envs, "--force")
    for key in keys:
        cursors = sync_cursors(sim, key)
        assert cursors[0] == resumed_from[key] - LOOKBACK, "from its own bookmark, less lookback"
        assert_table_matches_truth(postgres, pg_database, sim, key, stream_name(key))
        bookmark = get_bookmarks(f"{STATE_BASE}:{key}", envs[key])[stream_name(key)]
        assert bookmark["replication_key_value"] == max(
            int(r["lastSubmissionId"]) for r in sim.truth(key).values()
        )
