"""The main job survives faults of the PostgreSQL it writes to, and loses nothing.

Each test runs the real `meltano run tap-flowfinity target-postgres` (the shipped meltano.yml
and target settings) against the simulator while a writer keeps creating, updating, deleting
and restoring records, and strikes the target's database at the moment that matters:

- a fast restart (`pg_ctl restart -m fast`) while a batch is copied in, after an earlier batch
  of the same run committed;
- a stop while a batch is copied in that lasts past the end of the run and of the next one;
- `pg_terminate_backend` on the target's connection while it copies a batch, and while it
  merges a batch into the table (held at that moment by a lock, see database_faults.py);
- a full disk: the target's tables on a tablespace on a small tmpfs that fills up.

Each failed run must exit non-zero with target-postgres's one-line reason in Meltano's log,
must not have stored a bookmark beyond the rows PostgreSQL committed, and the next run must
complete; at the end (writer stopped, one more run) the table equals the source.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowfinity_simulator import Simulator
from tests.e2e.database_faults import (
    FaultRun,
    during_merge,
    mid_load,
    run_job_with_fault,
    terminate,
)
from tests.e2e.run_checks import (
    SystemDatabase,
    assert_bookmark_not_ahead,
    assert_table_is_the_source,
    pg_rows,
    target_error_line,
)
from tests.e2e.source_writer import VIEW, WRITER_FOR_LONG_RUNS, Writer
from tests.harness.meltano import MeltanoEnv, ensure_installed, run_job, run_meltano
from tests.harness.postgres import ThrowawayPostgres

DBNAME = "target"
# Two batches of the shipped batch_size_rows (20000) in the first sync: a fault can strike
# the second after the first committed.
SYNTHETIC_RECORDS = 30_000
WRITES = WRITER_FOR_LONG_RUNS
LOST_CONNECTION = re.compile(
    r"connection is lost|server closed the connection|terminating connection", re.IGNORECASE
)


@pytest.fixture
def target_server() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL of the test's own: these tests restart and stop it."""
    ensure_installed()
    with ThrowawayPostgres(dbname=DBNAME) as server:
        yield server


class Pipeline:
    """The job, its source under a writer, its target database and its system database."""

    def __init__(self, server: ThrowawayPostgres, home: Path, seed: int) -> None:
        self.server = server
        self.sim = Simulator(synthetic=SYNTHETIC_RECORDS, demo_records=5, seed=seed).start()
        self.env = MeltanoEnv(
            pg=server,
            dbname=DBNAME,
            sim_port=self.sim.port,
            views=[{"name": VIEW, "url": self.sim.view_url(VIEW)}],
            home=home,
        )
        self.system_db = SystemDatabase.of_home(home)
        self.writer = Writer(self.sim, seed + 1, SYNTHETIC_RECORDS, **WRITES)
        self.writer.start()

    def run_with(self, fault: t.Any, server_back: bool = True) -> FaultRun:
        """A run the fault strikes: it must fail, with the target's reason, no bookmark ahead."""
        result = run_job_with_fault(self.env, fault)
        assert result.fired, "the fault never found its moment: the run ended first"
        assert result.returncode != 0, "a run whose database failed under it must not succeed"
        reason = target_error_line(result.stderr) or ""
        assert LOST_CONNECTION.search(reason), result.stderr[-3000:]
        if server_back:
            self.assert_bookmark_not_ahead()
        return result

    def assert_bookmark_not_ahead(self) -> None:
        assert_bookmark_not_ahead(self.server, DBNAME, self.sim, self.writer, self.system_db)

    def finish(self) -> None:
        """The next run completes; then, writes stopped, the table is the source."""
        started = time.monotonic()
        run_job(self.env)
        self.assert_bookmark_not_ahead()
        self.writer.stop()
        print(f"recovery run {time.monotonic() - started:.1f}s")
        run_job(self.env)
        print(f"final run {time.monotonic() - started:.1f}s")
        assert_table_is_the_source(self.server, DBNAME, self.sim, self.system_db)

    def close(self) -> None:
        self.writer.halt.set()
        self.sim.stop()


@pytest.fixture
def pipeline(target_server: ThrowawayPostgres, tmp_path: Path) -> Iterator[Pipeline]:
    line = Pipeline(target_server, tmp_path / "meltano", seed=4242)
    try:
        yield line
    finally:
        line.close()


def test_fast_restart_mid_load(pipeline: Pipeline) -> None:
    server = pipeline.server
    pipeline.run_with(mid_load(server, DBNAME, VIEW, lambda _pid: server.restart("fast")))
    assert pg_rows(server, DBNAME), "the first batch committed before the restart"
    pipeline.finish()


def test_stop_longer_than_the_run(pipeline: Pipeline) -> None:
    server = pipeline.server
    pipeline.run_with(
        mid_load(server, DBNAME, VIEW, lambda _pid: server.stop_server()), server_back=False
    )
    # Still down when the next scheduled run starts: it fails at once, naming the server.
    down = run_meltano(["run", "tap-flowfinity", "target-postgres"], pipeline.env, check=False)
    assert down.returncode != 0
    reason = target_error_line(down.stderr) or ""
    assert f'"{server.host}", port {server.port} failed: Connection refused' in reason, reason
    server.start_server()
    pipeline.assert_bookmark_not_ahead()
    pipeline.finish()


def test_connection_terminated_mid_batch(pipeline: Pipeline) -> None:
    server = pipeline.server
    pipeline.run_with(mid_load(server, DBNAME, VIEW, lambda pid: terminate(server, DBNAME, pid)))
    pipeline.finish()


def test_connection_terminated_during_merge(pipeline: Pipeline) -> None:
    server = pipeline.server
    run_job(pipeline.env)  # the table exists; the next run merges into it
    before = dict(pg_rows(server, DBNAME))
    stored = pipeline.system_db.bookmark()
    for record_id in list(before)[:5000]:  # a batch big enough to merge while the lock holds
        pipeline.sim.update(VIEW, record_id, {"Summary": "merged?"})
    pipeline.run_with(
        during_merge(server, DBNAME, VIEW, lambda pid: terminate(server, DBNAME, pid))
    )
    assert pipeline.system_db.bookmark() == stored, "the merge rolled back: bookmark unchanged"
    after = dict(pg_rows(server, DBNAME))
    assert all(after[rid] >= sid for rid, sid in before.items()), "a committed row went back"
    pipeline.finish()


SMALL_DISK = "size={size},uid={uid},gid={gid},mode=0700"


@contextlib.contextmanager
def small_filesystem(size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes`, owned by the server's OS user (mounting needs root)."""
    import pwd

    # not under pytest's tmp_path: the server's OS user must be able to reach it
    parent = Path(tempfile.mkdtemp(prefix="ff-small-disk-"))
    parent.chmod(0o711)
    path = parent / "mnt"
    path.mkdir()
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else pwd.getpwuid(os.getuid())
    options = SMALL_DISK.format(size=size_bytes, uid=owner.pw_uid, gid=owner.pw_gid)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], capture_output=True, check=False)
        shutil.rmtree(parent, ignore_errors=True)


def resize(path: Path, size_bytes: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size_bytes}", str(path)], check=True)


def used_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def test_full_disk(pipeline: Pipeline) -> None:
    server = pipeline.server
    with small_filesystem(256 * 2**20) as disk:
        (disk / "ts").mkdir()
        server.create_tablespace("small_disk", str(disk / "ts"))
        try:
            # the target's tables and its per-batch temp tables live on the small disk
            server.use_tablespace(DBNAME, "small_disk")
            run_job(pipeline.env)
            before = dict(pg_rows(server, DBNAME))
            stored = pipeline.system_db.bookmark()
            resize(disk, used_bytes(disk) + 2 * 2**20)  # room for a small batch, not this one
            for record_id in list(before)[:15_000]:
                pipeline.sim.update(VIEW, record_id, {"Summary": "x" * 200})
            result = run_meltano(
                ["run", "tap-flowfinity", "target-postgres"], pipeline.env, check=False
            )
            assert result.returncode != 0
            reason = target_error_line(result.stderr) or ""
            assert "No space left on device" in reason, result.stderr[-3000:]
            assert pipeline.system_db.bookmark() == stored
            after = dict(pg_rows(server, DBNAME))
            assert all(after[rid] >= sid for rid, sid in before.items()), "committed row lost"
            pipeline.assert_bookmark_not_ahead()
            resize(disk, 256 * 2**20)  # space freed
            pipeline.finish()
        finally:
            server.drop_database(DBNAME)
            server.drop_tablespace("small_disk")
