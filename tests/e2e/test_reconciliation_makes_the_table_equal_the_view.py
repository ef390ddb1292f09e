"""Reconciliation end to end: after a pass, the table equals the view, through the main job.

`meltano run tap-flowfinity target-postgres` with the shipped meltano.yml. What the incremental
recipe cannot see -- records removed with Delete (purged), records gone out of the view's
filter, a submission visible 2,500 ids late -- stays as documented through incremental runs;
a reconciliation then flags every such row (or deletes it, with `hard_delete`) and loads the
late record. A watcher polling the table during the pass never sees a record the view still
shows flagged; a pass SIGKILLed half-way flags nothing and the same command, run again, finishes
the job; the same holds while a chaos writer changes the view.
"""

from __future__ import annotations

import threading
import time
import typing as t
from pathlib import Path

import pytest

from flowfinity_simulator import Simulator
from tests.e2e.helpers import DELETED_STATES, assert_table_matches_truth, table_rows
from tests.e2e.pipeline import Pipeline
from tests.e2e.run_checks import SystemDatabase, log_tail
from tests.harness.meltano import MeltanoEnv, ensure_installed, kill_group, run_job, start_meltano

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # starts the simulator, PostgreSQL and Meltano

LEADS = "leads"
# Commits during the pass, so the watcher sees the table between them.
SMALL_BATCHES = {"TARGET_POSTGRES_BATCH_SIZE_ROWS": "500"}


class Watcher(threading.Thread):
    """Polls the table while a pass runs: a flagged row of a record the view shows is a fault.

    A row flagged in a deleted workflow state is a soft delete, not a fault; `ignored` are
    records the view may legitimately have lost meanwhile (a chaos writer's drift).
    """

    def __init__(
        self,
        postgres: t.Any,
        dbname: str,
        shown: t.Callable[[], t.Iterable[str]],
        ignored: t.Callable[[], set[str]] = set,
    ) -> None:
        super().__init__(daemon=True, name="table-watcher")
        self.postgres, self.dbname = postgres, dbname
        self.shown, self.ignored = shown, ignored
        self.halt = threading.Event()
        self.polls = 0
        self.violations: list[str] = []

    def run(self) -> None:
        sql = (
            f'select "RecordID", "State" from flowfinity.{LEADS} where _sdc_deleted_at is not null'
        )
        while not self.halt.is_set():
            shown = set(self.shown())
            flagged = self.postgres.query(sql, self.dbname)
            ignored = self.ignored()
            self.violations += [
                rid
                for rid, state in flagged
                if rid in shown and state not in DELETED_STATES and rid not in ignored
            ]
            self.polls += 1
            self.halt.wait(0.05)

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.join(timeout=30)


def job_env(sim: Simulator, postgres: t.Any, dbname: str, home: Path, **extra: str) -> MeltanoEnv:
    ensure_installed()
    return MeltanoEnv(
        pg=postgres,
        dbname=dbname,
        sim_port=sim.port,
        views=[{"name": LEADS, "url": sim.view_url(LEADS)}],
        home=home,
        extra={**SMALL_BATCHES, **extra},
    )


def flagged(postgres: t.Any, dbname: str) -> set[str]:
    rows = table_rows(postgres, dbname, LEADS)
    return {rid for rid, row in rows.items() if row["_sdc_deleted_at"] is not None}


def test_a_pass_flags_what_the_view_lost_and_loads_a_submission_2500_ids_late(
    postgres, pg_database, tmp_path
):
    with Simulator(synthetic=3000, demo_records=5, seed=7) as sim:
        env = job_env(sim, postgres, pg_database, tmp_path / "meltano")
        run_job(env)  # a first sync: itself a pass
        assert_table_matches_truth(postgres, pg_database, sim, LEADS)

        purged = [sim.purge(LEADS, rid)["RecordID"] for rid in ("000000010", "000001500")]
        purged.append(sim.purge(LEADS, sorted(sim.truth(LEADS))[-1])["RecordID"])
        left = sim.leave(LEADS, "000002000")["RecordID"]
        slow = sim.hold(LEADS, {"Company": "Slow Submission Ltd"}, ids=2500)
        sim.advance_counter(1500)  # another app's submissions, while the slow one runs
        sim.create(LEADS)  # visible, 1,500 ids above it: the next run reads past its id
        run_job(env)
        assert slow.record_id not in sim.truth(LEADS)
        sim.advance_counter(1000)  # 2,500 ids after its own: the slow one commits now
        assert slow.record_id in sim.truth(LEADS)
        sim.create(LEADS)
        run_job(env)

        # As documented: incremental runs cannot see any of it.
        rows = table_rows(postgres, pg_database, LEADS)
        assert slow.record_id not in rows, "2,500 ids late: past the lookback (1,000)"
        assert all(rows[rid]["_sdc_deleted_at"] is None for rid in [*purged, left])

        sim.clear_request_log()
        truth_before = set(sim.truth(LEADS))
        with Watcher(postgres, pg_database, lambda: truth_before) as watcher:
            run_job(env.reconciling())
        assert watcher.violations == []
        assert watcher.polls >= 3, "the watcher saw the pass"
        assert flagged(postgres, pg_database) >= {*purged, left}
        assert_table_matches_truth(postgres, pg_database, sim, LEADS, gone_flagged=True)
        assert table_rows(postgres, pg_database, LEADS)[slow.record_id]["Company"] == (
            "Slow Submission Ltd"
        )

        # The next run continues incrementally from the bookmark: the pass did not move it.
        bookmark = SystemDatabase.of_home(env.home).bookmark(LEADS)
        assert bookmark == max(int(r["lastSubmissionId"]) for r in sim.truth(LEADS).values())
        sim.enter(LEADS, left)  # back in the view's filter
        sim.clear_request_log()
        run_job(env)
        assert sim.cursor_requests(LEADS)[-2] == bookmark - 1000
        assert table_rows(postgres, pg_database, LEADS)[left]["_sdc_deleted_at"] is None
        assert_table_matches_truth(postgres, pg_database, sim, LEADS, gone_flagged=True)


@pytest.mark.parametrize("hard_delete", [False, True])
def test_hard_delete_removes_exactly_the_rows_the_view_lost(
    postgres, pg_database, tmp_path, hard_delete
):
    """The pinned target-postgres and SDK delete (or flag) older versions only, never the pass's."""
    with Simulator(demo_records=40, seed=3) as sim:
        env = job_env(
            sim,
            postgres,
            pg_database,
            tmp_path / "meltano",
            TARGET_POSTGRES_HARD_DELETE=str(hard_delete).lower(),
        )
        run_job(env)
        gone = [sim.purge(LEADS, rid)["RecordID"] for rid in sorted(sim.truth(LEADS))[::7]]
        sim.delete(LEADS, sorted(sim.truth(LEADS))[1])  # a soft delete: kept either way
        run_job(env.reconciling())
        rows = table_rows(postgres, pg_database, LEADS)
        if hard_delete:
            assert not set(gone) & set(rows)
            assert_table_matches_truth(postgres, pg_database, sim, LEADS)
        else:
            assert all(rows[rid]["_sdc_deleted_at"] is not None for rid in gone)
            assert_table_matches_truth(postgres, pg_database, sim, LEADS, gone_flagged=True)
        run_job(env.reconciling())  # a second pass keeps every present row
        assert_table_matches_truth(postgres, pg_database, sim, LEADS, gone_flagged=not hard_delete)


def newest_version(postgres: t.Any, dbname: str) -> int:
    sql = f"select coalesce(max(_sdc_table_version), 0) from flowfinity.{LEADS}"
    return int(postgres.query(sql, dbname)[0][0] or 0)


def kill_once_the_pass_is_loading(env: MeltanoEnv, postgres: t.Any, dbname: str) -> None:
    """Start the job and SIGKILL it once the target has committed rows of a new pass.

    target-postgres emits a STATE only when it drains every sink (at the end of a run), so
    the stored state is the previous run's: the pass is re-run, not resumed. (A resume from
    a stored pass is in test_reconciliation_messages.py.)
    """
    before = newest_version(postgres, dbname)
    proc = start_meltano(["run", "tap-flowfinity", "target-postgres"], env)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if newest_version(postgres, dbname) > before:
                return
            if proc.poll() is not None:
                _, stderr = proc.communicate()
                pytest.fail(f"the pass ended before the kill:\n{log_tail(stderr)}")
            time.sleep(0.05)
        pytest.fail("no row of the pass committed within 300 s")
    finally:
        kill_group(proc)
        proc.communicate()


def test_a_pass_killed_half_way_flags_nothing_and_the_next_run_finishes_it(
    postgres, pg_database, tmp_path
):
    with Simulator(synthetic=6000, demo_records=5, seed=11) as sim:
        env = job_env(sim, postgres, pg_database, tmp_path / "meltano")
        system_db = SystemDatabase.of_home(env.home)
        run_job(env)
        purged = [sim.purge(LEADS, f"{n:09d}")["RecordID"] for n in (5, 2500, 5900)]

        reconcile = env.reconciling()
        with Watcher(postgres, pg_database, lambda: sim.truth(LEADS)) as watcher:
            kill_once_the_pass_is_loading(reconcile, postgres, pg_database)
        assert watcher.violations == []
        assert flagged(postgres, pg_database) == set(), "a pass stopped half-way flags nothing"
        stopped_version = newest_version(postgres, pg_database)

        system_db.let_dead_runs_go_stale()
        run_job(reconcile)  # the same command, resumed
        assert newest_version(postgres, pg_database) > stopped_version
        assert "reconciling" not in system_db.stream_state(LEADS)
        assert flagged(postgres, pg_database) == set(purged)
        assert_table_matches_truth(postgres, pg_database, sim, LEADS, gone_flagged=True)


def test_under_the_chaos_writer_passes_flag_only_what_the_view_lost(
    postgres, pg_database, tmp_path
):
    line = Pipeline(
        postgres, pg_database, tmp_path / "meltano", seed=99, synthetic=5000, drift=True
    )
    line.env = line.env.with_extra(**SMALL_BATCHES)
    reconcile = line.env.reconciling()
    try:
        run_job(line.env)
        line.writer.start()
        with Watcher(
            postgres,
            pg_database,
            lambda: line.sim.truth(LEADS),
            ignored=lambda: set(line.writer.drifted),
        ) as watcher:
            run_job(line.env)
            run_job(reconcile)
            line.assert_bookmark_not_ahead()
            kill_once_the_pass_is_loading(reconcile, postgres, pg_database)
            line.system_db.let_dead_runs_go_stale()
            line.assert_bookmark_not_ahead()
            run_job(reconcile)  # the same command, resumed
            line.assert_bookmark_not_ahead()
        assert watcher.violations == []
        assert line.writer.drifted, "the writer purged or moved records out"
        line.writer.stop()
        run_job(reconcile)
        assert_table_matches_truth(postgres, pg_database, line.sim, LEADS, gone_flagged=True)
        gone_rows = set(line.sim.gone(LEADS)) & set(table_rows(postgres, pg_database, LEADS))
        assert gone_rows, "rows of records the view lost, flagged"
    finally:
        line.close()
