"""The main job as the database- and state-store-fault suites set it up.

One view (`leads`) of a simulator with a synthetic history, a writer changing it, the real
`meltano run tap-flowfinity target-postgres` into a target database, and the Meltano system
database that holds the bookmark (sqlite in the run's home, or `system_db` when the suite puts
it in PostgreSQL).
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterator
from pathlib import Path

from flowfinity_simulator import Simulator
from tests.e2e.run_checks import (
    SystemDatabase,
    assert_bookmark_not_ahead,
    assert_table_is_the_source,
)
from tests.e2e.source_writer import VIEW, WRITER_FOR_LONG_RUNS, Writer
from tests.harness.meltano import MeltanoEnv, ensure_installed, run_job
from tests.harness.postgres import ThrowawayPostgres

# Two batches of the shipped batch_size_rows (20000) in the first sync: a fault can strike
# the second after the first committed.
SYNTHETIC_RECORDS = 30_000


def own_postgres(dbname: str) -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL of the test's own (for fixtures of tests that stop or restart it)."""
    ensure_installed()
    with ThrowawayPostgres(dbname=dbname) as server:
        yield server


class Pipeline:
    """The job, its source under a writer (not started yet), its target and system databases."""

    def __init__(
        self,
        postgres: t.Any,
        dbname: str,
        home: Path,
        seed: int,
        system_db: SystemDatabase | None = None,
        extra_env: dict[str, str] | None = None,
        synthetic: int = SYNTHETIC_RECORDS,
        drift: bool = False,
    ) -> None:
        self.postgres = postgres
        self.dbname = dbname
        self.sim = Simulator(synthetic=synthetic, demo_records=5, seed=seed).start()
        self.env = MeltanoEnv(
            pg=postgres,
            dbname=dbname,
            sim_port=self.sim.port,
            views=[{"name": VIEW, "url": self.sim.view_url(VIEW)}],
            home=home,
            extra=extra_env or {},
        )
        self.system_db = system_db or SystemDatabase.of_home(home)
        self.writer = Writer(self.sim, seed + 1, synthetic, drift=drift, **WRITER_FOR_LONG_RUNS)

    def assert_bookmark_not_ahead(self) -> None:
        assert_bookmark_not_ahead(self.postgres, self.dbname, self.sim, self.writer, self.system_db)

    def finish(self) -> None:
        """Writes stopped, one more run: the table is the source, the bookmark the newest id."""
        self.writer.stop()
        run_job(self.env)
        assert_table_is_the_source(self.postgres, self.dbname, self.sim, self.system_db)

    def close(self) -> None:
        self.writer.halt.set()
        self.sim.stop()
