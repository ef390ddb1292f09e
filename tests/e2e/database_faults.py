"""Hitting the target's PostgreSQL at a chosen moment of a running job.

A fault is only worth testing at the moment it matters: while a batch is being copied in, or
while it is being merged into the table. The moment is found by watching `pg_stat_activity`
for the target's own statements from a separate connection (psycopg, autocommit, so every
look sees a fresh snapshot), a few milliseconds apart. The merge is short, so it is made to
wait: a session holding `LOCK TABLE ... IN SHARE MODE` lets the batch's COPY into its temp
table through but blocks the INSERT ... SELECT that merges it, and the blocked statement is
then hit, or let go when the test has done what it needs in that moment.
"""

from __future__ import annotations

import signal
import threading
import time
import typing as t
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from tests.e2e.run_checks import RUN, stop_group
from tests.harness.meltano import MeltanoEnv, start_meltano

# target-postgres 0.8.1 copies each batch with `COPY "<uuid temp table>" (...) FROM STDIN`,
# then merges with `INSERT INTO <schema>.<table> (...) SELECT ... LEFT OUTER JOIN ...` and an
# UPDATE, all in one transaction per batch.
COPY_INTO_TEMP = 'COPY "%'
MERGE_INSERT = "INSERT INTO flowfinity.{table} %SELECT%"
POLL_S = 0.005


def _connect(postgres: t.Any, dbname: str) -> psycopg.Connection[t.Any]:
    return psycopg.connect(postgres.dsn(dbname), autocommit=True, connect_timeout=10)


def wait_for_statement(
    postgres: t.Any,
    dbname: str,
    query_like: str,
    running: Callable[[], bool],
    *,
    waiting_on_lock: bool = False,
    timeout_s: float = 300,
) -> int | None:
    """The pid of a backend running (or, with `waiting_on_lock`, blocked in) such a statement.

    None when `running()` turns false (the job ended) or the timeout passes first.
    """
    sql = (
        "select pid from pg_stat_activity where datname = %s and pid <> pg_backend_pid() "
        "and state = 'active' and query ilike %s"
        + (" and wait_event_type = 'Lock'" if waiting_on_lock else "")
        + " limit 1"
    )
    deadline = time.monotonic() + timeout_s
    with _connect(postgres, dbname) as con:
        while running() and time.monotonic() < deadline:
            row = con.execute(sql, (dbname, query_like)).fetchone()
            if row is not None:
                return int(row[0])
            time.sleep(POLL_S)
    return None


def terminate(postgres: t.Any, dbname: str, pid: int) -> bool:
    """`pg_terminate_backend(pid)`, as an operator or an idle-session killer would."""
    with _connect(postgres, dbname) as con:
        row = con.execute("select pg_terminate_backend(%s)", (pid,)).fetchone()
    return bool(row and row[0])


class MergeBlocker:
    """Holds `LOCK TABLE flowfinity.<table> IN SHARE MODE` until released.

    COPY into the target's temp table and reads go on; the merge of the next batch waits.
    """

    def __init__(self, postgres: t.Any, dbname: str, table: str) -> None:
        self.table = table
        self.con = psycopg.connect(postgres.dsn(dbname), connect_timeout=10)
        self.con.execute(f"LOCK TABLE flowfinity.{table} IN SHARE MODE")

    def release(self) -> None:
        if not self.con.closed:
            self.con.rollback()
            self.con.close()


@dataclass
class FaultRun:
    """How a job run with a fault in it ended."""

    returncode: int
    stderr: str
    fired: bool
    seconds: float


def run_job_with_fault(
    env: MeltanoEnv, fault: Callable[[Callable[[], bool]], bool], timeout_s: float = 300
) -> FaultRun:
    """Run the job while `fault(running)` waits for its moment in a thread and strikes.

    `fault` returns whether it struck; `running()` tells it whether the job is still going.
    The job's output is drained meanwhile (a full pipe would stall it).
    """
    proc = start_meltano(RUN, env)
    fired: list[bool] = []
    errors: list[BaseException] = []

    def strike() -> None:
        try:
            fired.append(fault(lambda: proc.poll() is None))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=strike, name="db-fault", daemon=True)
    thread.start()
    try:
        _, stderr = proc.communicate(timeout=timeout_s)
    except BaseException:
        stderr = stop_group(proc, signal.SIGKILL)
        raise
    finally:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return FaultRun(proc.returncode, stderr, bool(fired and fired[0]), time.monotonic() - started)


def wait_for_rows(postgres: t.Any, dbname: str, table: str, running: Callable[[], bool]) -> bool:
    """Wait until the table holds committed rows (a batch of this run went in)."""
    sql = f"select to_regclass('flowfinity.{table}') is not null"
    with _connect(postgres, dbname) as con:
        while running():
            exists = con.execute(sql).fetchone()
            if exists and exists[0]:
                row = con.execute(f"select exists(select 1 from flowfinity.{table})").fetchone()
                if row and row[0]:
                    return True
            time.sleep(POLL_S * 4)
    return False


def mid_load(
    postgres: t.Any, dbname: str, table: str, action: Callable[[int], object]
) -> Callable[[Callable[[], bool]], bool]:
    """A fault that strikes while a batch is copied in, after a first batch of the run committed.

    `action(pid)` gets the target backend's pid (a restart or stop ignores it).
    """

    def fault(running: Callable[[], bool]) -> bool:
        if not wait_for_rows(postgres, dbname, table, running):
            return False
        pid = wait_for_statement(postgres, dbname, COPY_INTO_TEMP, running)
        if pid is None:
            return False
        action(pid)
        return True

    return fault


def during_merge(
    postgres: t.Any, dbname: str, table: str, action: Callable[[int], object]
) -> Callable[[Callable[[], bool]], bool]:
    """A fault that strikes while a batch's merge into the (existing) table is under way."""

    def fault(running: Callable[[], bool]) -> bool:
        blocker = MergeBlocker(postgres, dbname, table)
        try:
            pid = wait_for_statement(
                postgres, dbname, MERGE_INSERT.format(table=table), running, waiting_on_lock=True
            )
            if pid is None:
                return False
            action(pid)
            return True
        finally:
            blocker.release()

    return fault
