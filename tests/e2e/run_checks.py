"""What the failure suites check after each run of the real job, and how they stop one.

The promise under test: a bookmark Meltano stored is never beyond what PostgreSQL durably
holds, whatever killed the run (a signal, a database restart, a terminated connection, a full
disk, a failed state store). The checks read the system database straight (sqlite file or a
PostgreSQL database), because `meltano state get` costs a Meltano start per look.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import time
import typing as t
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.e2e.helpers import assert_table_matches_truth
from tests.e2e.source_writer import VIEW
from tests.harness.meltano import STATE_ID, kill_group

RUN = ["run", "tap-flowfinity", "target-postgres"]
STATE_SQL = f"select partial_state, completed_state from state where state_id = '{STATE_ID}'"
# What five minutes do after a SIGKILL (see `SystemDatabase.let_dead_runs_go_stale`).
STALE_SQL = (
    "update runs set last_heartbeat_at = '{stale}' "
    f"where state = 'RUNNING' and job_name = '{STATE_ID}'"
)


class SystemDatabase:
    """Meltano's system database (where `meltano run` keeps state and run records).

    `sqlite` is the file of a default MeltanoEnv; `pg` and `dbname` a PostgreSQL-backed one.
    """

    def __init__(
        self, sqlite: Path | None = None, pg: t.Any = None, dbname: str | None = None
    ) -> None:
        self.sqlite = sqlite
        self.pg = pg
        self.dbname = dbname

    @classmethod
    def of_home(cls, home: Path) -> SystemDatabase:
        """The sqlite system database of a MeltanoEnv with this `home`."""
        return cls(sqlite=home / "meltano.db")

    def rows(self, sql: str) -> list[tuple[t.Any, ...]]:
        """Rows of a query ([] before Meltano created its tables)."""
        if self.pg is not None:
            exists = self.pg.query("select to_regclass('public.runs') is not null", self.dbname)
            return self.pg.query(sql, self.dbname) if exists[0][0] == "t" else []
        assert self.sqlite is not None
        if not self.sqlite.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{self.sqlite}?mode=ro", uri=True)) as con:
            try:
                return list(con.execute(sql).fetchall())
            except sqlite3.OperationalError:  # no tables yet
                return []

    def execute(self, sql: str) -> None:
        if self.pg is not None:
            self.pg.execute(sql, self.dbname)
            return
        assert self.sqlite is not None
        with contextlib.closing(sqlite3.connect(self.sqlite)) as con, con:
            con.execute(sql)

    def bookmark(self, view: str = VIEW) -> int | None:
        """The bookmark `meltano run` stored for `view` (a partial state is the newer)."""
        rows = self.rows(STATE_SQL)
        if not rows:
            return None
        for text in rows[0]:
            value = (
                json.loads(text or "{}")
                .get("singer_state", {})
                .get("bookmarks", {})
                .get(view, {})
                .get("replication_key_value")
            )
            if value is not None:
                return int(value)
        return None

    def stream_state(self, view: str = VIEW) -> dict[str, t.Any]:
        """The whole state `meltano run` stored for `view` ({} when none; partial is newer)."""
        rows = self.rows(STATE_SQL)
        for text in rows[0] if rows else ():
            state = json.loads(text or "{}").get("singer_state", {}).get("bookmarks", {})
            if view in state:
                return dict(state[view])
        return {}

    def run_states(self) -> dict[str, int]:
        """How many run records the job has, by state (RUNNING, SUCCESS, FAILED ...)."""
        rows = self.rows(
            f"select state, count(*) from runs where job_name = '{STATE_ID}' group by 1"
        )
        return {str(state): int(count) for state, count in rows}

    def let_dead_runs_go_stale(self) -> None:
        """What five minutes do after a SIGKILL: Meltano then sees the killed run as stale.

        A SIGKILLed `meltano run` leaves its job RUNNING in the system database, and Meltano
        refuses to start the same job until its heartbeat is 5 minutes old (or with --force).
        Ageing the heartbeat is that wait, so the resume is the unchanged command.
        """
        stale = datetime.now(timezone.utc) - timedelta(minutes=10)
        self.execute(STALE_SQL.format(stale=stale.strftime("%Y-%m-%d %H:%M:%S.%f")))


def table_exists(postgres: t.Any, dbname: str, view: str = VIEW) -> bool:
    exists = postgres.query(f"select to_regclass('flowfinity.{view}') is not null", dbname)
    return exists[0][0] == "t"


def pg_rows(postgres: t.Any, dbname: str, view: str = VIEW) -> list[tuple[str, int]]:
    """(RecordID, lastSubmissionId) of every row durably in the table ([] before it exists)."""
    if not table_exists(postgres, dbname, view):
        return []
    rows = postgres.query(f'select "RecordID", "lastSubmissionId" from flowfinity.{view}', dbname)
    return [(rid, int(sid)) for rid, sid in rows if rid is not None and sid is not None]


def last_commit(postgres: t.Any, dbname: str, view: str = VIEW) -> str | None:
    """When target-postgres last committed a batch to the table (None before it exists)."""
    if not table_exists(postgres, dbname, view):
        return None
    return postgres.query(f"select max(_sdc_batched_at)::text from flowfinity.{view}", dbname)[0][0]


def bookmark_violations(
    bookmark: int | None,
    rows: list[tuple[str, int]],
    truth: dict[str, t.Any],
    late: set[tuple[str, int]],
) -> list[str]:
    """Versions at or below the stored bookmark that PostgreSQL does not hold.

    A version that became visible late is exempt: the lookback overlap delivers it, not the
    bookmark. [] means the bookmark is not ahead of the committed rows.
    """
    if bookmark is None:
        return []
    held = dict(rows)
    return [
        f"bookmark {bookmark} stored but {rid}@{sid} not in PostgreSQL (has {held.get(rid)})"
        for rid, record in truth.items()
        if (sid := int(record["lastSubmissionId"])) <= bookmark
        and (rid, sid) not in late
        and held.get(rid, -1) < sid
    ]


def duplicate_count(rows: list[tuple[str, int]]) -> int:
    return len(rows) - len(dict(rows))


def log_tail(stderr: str, lines: int = 40) -> str:
    """The informative end of a failed run's log (no SQL, metrics or traceback frames)."""
    noise = ("│", "INSERT INTO", "METRIC:", "────")
    kept = [line for line in stderr.splitlines() if not any(n in line for n in noise)]
    return "\n".join(kept[-lines:])


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in the process group."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def stop_group(proc: subprocess.Popen[str], sig: int) -> str:
    """Signal a running job's process group, wait until all of it is gone; its stderr."""
    kill_group(proc, sig)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        kill_group(proc, signal.SIGKILL)
        _, stderr = proc.communicate()
    deadline = time.monotonic() + 30
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)  # a SIGTERMed target may still be draining into PostgreSQL
    if group_alive(proc.pid):
        kill_group(proc, signal.SIGKILL)
    return stderr or ""


# The exception lines of target-postgres's traceback, e.g. `sqlalchemy.exc.OperationalError:
# (psycopg.OperationalError) the connection is lost`, `psycopg.errors.DiskFull: could not
# extend file ...: No space left on device`, `... connection to server at "127.0.0.1", port
# 5432 failed: Connection refused`; the last one is the reason.
TARGET_ERROR = re.compile(r"\] target-postgres (?:[a-z_]+\.)+[A-Z]\w+: (?P<reason>.+)$")


def target_error_line(stderr: str) -> str | None:
    """The one line that says why target-postgres failed (None: it did not)."""
    found = [m["reason"] for line in stderr.splitlines() if (m := TARGET_ERROR.search(line))]
    return found[-1] if found else None


def assert_bookmark_not_ahead(
    postgres: t.Any, dbname: str, sim: t.Any, writer: t.Any, system_db: SystemDatabase
) -> None:
    """No version at or below the stored bookmark is missing from PostgreSQL; no duplicates."""
    rows = pg_rows(postgres, dbname)
    assert duplicate_count(rows) == 0
    violations = bookmark_violations(
        system_db.bookmark(), rows, sim.truth(VIEW), writer.late_versions()
    )
    assert not violations, violations[:5]


def assert_table_is_the_source(
    postgres: t.Any, dbname: str, sim: t.Any, system_db: SystemDatabase
) -> None:
    """After a clean run with the writer stopped: table == truth, bookmark == newest id."""
    assert_table_matches_truth(postgres, dbname, sim, VIEW)
    newest = max(int(r["lastSubmissionId"]) for r in sim.truth(VIEW).values())
    assert system_db.bookmark() == newest
