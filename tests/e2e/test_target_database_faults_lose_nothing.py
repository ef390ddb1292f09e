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
must not have stored a bookmark beyond the rows PostgreSQL committed; the next run (the writer
stopped first) must complete and leave the table equal to the source.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.database_faults import (
    FaultRun,
    during_merge,
    mid_load,
    run_job_with_fault,
    terminate,
)
from tests.e2e.pipeline import Pipeline, own_postgres
from tests.e2e.run_checks import RUN, pg_rows, target_error_line
from tests.e2e.source_writer import VIEW
from tests.harness.meltano import run_job, run_meltano
from tests.harness.postgres import ThrowawayPostgres

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # starts the simulator and PostgreSQL

DBNAME = "target"
LOST_CONNECTION = re.compile(
    r"connection is lost|server closed the connection|terminating connection", re.IGNORECASE
)


@pytest.fixture
def target_server() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL of the test's own: these tests restart and stop it."""
    yield from own_postgres(DBNAME)


@pytest.fixture
def pipeline(target_server: ThrowawayPostgres, tmp_path: Path) -> Iterator[Pipeline]:
    line = Pipeline(target_server, DBNAME, tmp_path / "meltano", seed=4242)
    line.writer.start()
    try:
        yield line
    finally:
        line.close()


def struck_run(pipeline: Pipeline, fault: t.Any, server_back: bool = True) -> FaultRun:
    """A run the fault strikes: it fails with the target's reason and stores no bookmark ahead."""
    result = run_job_with_fault(pipeline.env, fault)
    assert result.fired, "the fault never found its moment: the run ended first"
    assert result.returncode != 0, "a run whose database failed under it must not succeed"
    reason = target_error_line(result.stderr) or ""
    assert LOST_CONNECTION.search(reason), result.stderr[-3000:]
    if server_back:
        pipeline.assert_bookmark_not_ahead()
    return result


def test_fast_restart_mid_load(pipeline: Pipeline) -> None:
    server = pipeline.postgres
    struck_run(pipeline, mid_load(server, DBNAME, VIEW, lambda _pid: server.restart("fast")))
    assert pg_rows(server, DBNAME), "the first batch committed before the restart"
    pipeline.finish()


def test_stop_longer_than_the_run(pipeline: Pipeline) -> None:
    server = pipeline.postgres
    struck_run(pipeline, mid_load(server, DBNAME, VIEW, lambda _pid: server.stop_server()), False)
    # Still down when the next scheduled run starts: it fails at once, naming the server.
    down = run_meltano(RUN, pipeline.env, check=False)
    assert down.returncode != 0
    reason = target_error_line(down.stderr) or ""
    assert f'"{server.host}", port {server.port} failed: Connection refused' in reason, reason
    server.start_server()
    pipeline.assert_bookmark_not_ahead()
    pipeline.finish()


def test_connection_terminated_mid_batch(pipeline: Pipeline) -> None:
    server = pipeline.postgres
    struck_run(pipeline, mid_load(server, DBNAME, VIEW, lambda pid: terminate(server, DBNAME, pid)))
    pipeline.finish()


def test_connection_terminated_during_merge(pipeline: Pipeline) -> None:
    server = pipeline.postgres
    run_job(pipeline.env)  # the table exists; the next run merges into it
    before = dict(pg_rows(server, DBNAME))
    stored = pipeline.system_db.bookmark()
    for record_id in list(before)[:5000]:  # a batch big enough to merge while the lock holds
        pipeline.sim.update(VIEW, record_id, {"Summary": "merged?"})
    struck_run(
        pipeline, during_merge(server, DBNAME, VIEW, lambda pid: terminate(server, DBNAME, pid))
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
    server = pipeline.postgres
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
            result = run_meltano(RUN, pipeline.env, check=False)
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
