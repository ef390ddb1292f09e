"""The main job loses nothing when Meltano's state store (its system database) fails.

Production setups keep Meltano's system database in PostgreSQL (MELTANO_DATABASE_URI), so it
can be briefly unreachable: a failover, a restart, a network blip. Here it is a PostgreSQL of
its own, separate from the target's, stopped at two moments:

- at the start of a run: Meltano (4.4.1) retries the connection `database_max_retries` (3)
  times, `database_retry_timeout` (5 s) apart, then exits 1 before starting the tap or the
  target; a store back within that window is simply used;
- just before the run stores its state (the target's merge of the last batch held by a lock
  while the store goes down): the target commits, Meltano cannot store the bookmark nor mark
  the run finished, and exits 1. The stored bookmark stays where it was -- behind the rows
  PostgreSQL now holds, never ahead -- and the run record stays RUNNING, so Meltano refuses the
  same job until its heartbeat is 5 minutes old. The run after that re-reads from the old
  bookmark (minus the lookback): the re-read is bounded by what the failed run read, and the
  upsert makes it harmless.

The writer keeps changing the source throughout; at the end the table equals the source.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.database_faults import during_merge, run_job_with_fault
from tests.e2e.pipeline import Pipeline, own_postgres
from tests.e2e.run_checks import (
    RUN,
    SystemDatabase,
    pg_rows,
    table_exists,
)
from tests.e2e.source_writer import VIEW
from tests.harness.meltano import run_job, run_meltano, start_meltano
from tests.harness.postgres import ThrowawayPostgres

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # starts the simulator and PostgreSQL

LOOKBACK = 1000  # the shipped default
STORE_DB = "meltano"


@pytest.fixture
def state_server() -> Iterator[ThrowawayPostgres]:
    """The PostgreSQL that holds Meltano's system database; the tests stop and start it."""
    yield from own_postgres(STORE_DB)


@pytest.fixture
def pipeline(postgres, pg_database, state_server, tmp_path) -> Iterator[Pipeline]:
    made = Pipeline(
        postgres,
        pg_database,
        tmp_path / "meltano",
        seed=777,
        system_db=SystemDatabase(pg=state_server, dbname=STORE_DB),
        extra_env={"MELTANO_DATABASE_URI": state_server.sqlalchemy_url(STORE_DB)},
    )
    try:
        yield made
    finally:
        made.close()


def store_failed(stderr: str, store: ThrowawayPostgres) -> bool:
    """Meltano's error names the state store's host and port (refused, or shutting down)."""
    return f'"{store.host}", port {store.port} failed: ' in stderr


def test_state_store_unreachable_at_start(
    pipeline: Pipeline, state_server: ThrowawayPostgres
) -> None:
    store = state_server
    pipeline.writer.start()
    store.stop_server()
    down = run_meltano(RUN, pipeline.env, check=False)
    assert down.returncode != 0
    assert "Could not connect to the database after 3 attempts" in down.stderr, down.stderr[-2000:]
    assert store_failed(down.stderr, store)
    assert not table_exists(pipeline.postgres, pipeline.dbname), "nothing ran without a state store"

    # Back within Meltano's retry window (3 x 5 s): the run waits for it and completes.
    proc = start_meltano(RUN, pipeline.env)
    first_lines = []
    assert proc.stderr is not None
    for line in proc.stderr:  # the store comes back once Meltano has found it down
        first_lines.append(line)
        if "DB connection failed. Will retry after 5s. Attempt 1/3" in line:
            store.start_server()
            break
    _, rest = proc.communicate(timeout=300)
    assert store.is_running(), "".join(first_lines)[-3000:]
    assert proc.returncode == 0, rest[-3000:]
    pipeline.assert_bookmark_not_ahead()
    pipeline.finish()


def test_state_store_down_when_the_run_stores_state(
    pipeline: Pipeline, state_server: ThrowawayPostgres
) -> None:
    store, sim = state_server, pipeline.sim
    run_job(pipeline.env)
    stored = pipeline.system_db.bookmark()
    assert stored is not None
    pipeline.writer.start()
    for record_id in [r for r, _ in pg_rows(pipeline.postgres, pipeline.dbname)][:5000]:
        sim.update(VIEW, record_id, {"Summary": "read twice?"})

    result = run_job_with_fault(
        pipeline.env,
        during_merge(pipeline.postgres, pipeline.dbname, VIEW, lambda _pid: store.stop_server()),
    )
    assert result.fired
    assert result.returncode != 0
    assert store_failed(result.stderr, store), result.stderr[-3000:]
    committed = max(sid for _, sid in pg_rows(pipeline.postgres, pipeline.dbname))
    assert committed > stored, "the target committed the batch the store never heard of"

    store.start_server()
    assert pipeline.system_db.bookmark() == stored, "no bookmark was stored: it stays behind"
    pipeline.assert_bookmark_not_ahead()
    assert pipeline.system_db.run_states().get("RUNNING") == 1, "the run could not be marked ended"

    # Meltano refuses the same job while the dead run's heartbeat is fresh (5 minutes) ...
    refused = run_meltano(RUN, pipeline.env, check=False)
    assert refused.returncode != 0
    assert "pipeline is already running" in refused.stderr, refused.stderr[-2000:]
    # ... and starts it once that time has passed, re-reading from the old bookmark.
    pipeline.system_db.let_dead_runs_go_stale()
    sim.clear_request_log()
    run_job(pipeline.env)
    first_cursor = next(c for c in sim.cursor_requests(VIEW) if c is not None)
    assert first_cursor == stored - LOOKBACK, "the re-read starts at the last stored bookmark"
    assert pipeline.system_db.run_states().get("RUNNING") is None
    pipeline.finish()
