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

import threading
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowfinity_simulator import Simulator
from tests.e2e.database_faults import during_merge, run_job_with_fault
from tests.e2e.run_checks import (
    RUN,
    SystemDatabase,
    assert_bookmark_not_ahead,
    assert_table_is_the_source,
    pg_rows,
    table_exists,
)
from tests.e2e.source_writer import VIEW, WRITER_FOR_LONG_RUNS, Writer
from tests.harness.meltano import MeltanoEnv, ensure_installed, run_job, run_meltano
from tests.harness.postgres import ThrowawayPostgres

SYNTHETIC_RECORDS = 30_000
WRITES = WRITER_FOR_LONG_RUNS
LOOKBACK = 1000  # the shipped default
STORE_DB = "meltano"


@pytest.fixture
def state_server() -> Iterator[ThrowawayPostgres]:
    """The PostgreSQL that holds Meltano's system database; the tests stop and start it."""
    ensure_installed()
    with ThrowawayPostgres(dbname=STORE_DB) as server:
        yield server


class Setup:
    def __init__(
        self, postgres: t.Any, dbname: str, store: ThrowawayPostgres, home: Path, seed: int
    ) -> None:
        self.postgres = postgres
        self.dbname = dbname
        self.store = store
        self.sim = Simulator(synthetic=SYNTHETIC_RECORDS, demo_records=5, seed=seed).start()
        self.env = MeltanoEnv(
            pg=postgres,
            dbname=dbname,
            sim_port=self.sim.port,
            views=[{"name": VIEW, "url": self.sim.view_url(VIEW)}],
            home=home,
            extra={"MELTANO_DATABASE_URI": store.sqlalchemy_url(STORE_DB)},
        )
        self.system_db = SystemDatabase(pg=store, dbname=STORE_DB)
        self.writer = Writer(self.sim, seed + 1, SYNTHETIC_RECORDS, **WRITES)

    def assert_bookmark_not_ahead(self) -> None:
        assert_bookmark_not_ahead(self.postgres, self.dbname, self.sim, self.writer, self.system_db)

    def finish(self) -> None:
        self.writer.stop()
        run_job(self.env)
        assert_table_is_the_source(self.postgres, self.dbname, self.sim, self.system_db)

    def close(self) -> None:
        self.writer.halt.set()
        self.sim.stop()


@pytest.fixture
def setup(postgres, pg_database, state_server, tmp_path) -> Iterator[Setup]:
    made = Setup(postgres, pg_database, state_server, tmp_path / "meltano", seed=777)
    try:
        yield made
    finally:
        made.close()


def store_failed(stderr: str, store: ThrowawayPostgres) -> bool:
    """Meltano's error names the state store's host and port (refused, or shutting down)."""
    return f'"{store.host}", port {store.port} failed: ' in stderr


def test_state_store_unreachable_at_start(setup: Setup) -> None:
    store = setup.store
    setup.writer.start()
    store.stop_server()
    down = run_meltano(RUN, setup.env, check=False)
    assert down.returncode != 0
    assert "Could not connect to the database after 3 attempts" in down.stderr, down.stderr[-2000:]
    assert store_failed(down.stderr, store)
    assert not table_exists(setup.postgres, setup.dbname), "nothing ran without a state store"

    # Back within Meltano's retry window (3 x 5 s): the run waits for it and completes.
    timer = threading.Timer(4.0, store.start_server)
    timer.start()
    try:
        back = run_meltano(RUN, setup.env, check=False)
    finally:
        timer.join()
    assert back.returncode == 0, back.stderr[-3000:]
    assert "DB connection failed. Will retry after 5s" in back.stderr
    setup.assert_bookmark_not_ahead()
    setup.finish()


def test_state_store_down_when_the_run_stores_state(setup: Setup) -> None:
    store, sim = setup.store, setup.sim
    run_job(setup.env)
    stored = setup.system_db.bookmark()
    assert stored is not None
    setup.writer.start()
    for record_id in [r for r, _ in pg_rows(setup.postgres, setup.dbname)][:5000]:
        sim.update(VIEW, record_id, {"Summary": "read twice?"})

    result = run_job_with_fault(
        setup.env,
        during_merge(setup.postgres, setup.dbname, VIEW, lambda _pid: store.stop_server()),
    )
    assert result.fired
    assert result.returncode != 0
    assert store_failed(result.stderr, store), result.stderr[-3000:]
    committed = max(sid for _, sid in pg_rows(setup.postgres, setup.dbname))
    assert committed > stored, "the target committed the batch the store never heard of"

    store.start_server()
    assert setup.system_db.bookmark() == stored, "no bookmark was stored: it stays behind"
    setup.assert_bookmark_not_ahead()
    assert setup.system_db.run_states().get("RUNNING") == 1, "the run could not be marked ended"

    # Meltano refuses the same job while the dead run's heartbeat is fresh (5 minutes) ...
    refused = run_meltano(RUN, setup.env, check=False)
    assert refused.returncode != 0
    assert "pipeline is already running" in refused.stderr, refused.stderr[-2000:]
    # ... and starts it once that time has passed, re-reading from the old bookmark.
    setup.system_db.let_dead_runs_go_stale()
    sim.clear_request_log()
    run_job(setup.env)
    first_cursor = next(c for c in sim.cursor_requests(VIEW) if c is not None)
    assert first_cursor == stored - LOOKBACK, "the re-read starts at the last stored bookmark"
    assert setup.system_db.run_states().get("RUNNING") is None
    setup.finish()
