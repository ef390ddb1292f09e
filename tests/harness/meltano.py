"""Run the repository's own Meltano project (meltano.yml) against throwaway servers.

Why through Meltano and not tap | target: the promise (docs/contract.md) is about
`meltano run tap-flowfinity target-postgres` -- the bookmark Meltano stores is the STATE
target-postgres emitted after its commit. Only a real `meltano run` exercises that chain.

Isolation: every `MeltanoEnv` has its own Meltano system database (MELTANO_DATABASE_URI, a
sqlite file in a temp dir), which is where `meltano run` keeps state, so no test sees another
test's bookmarks. The installed plugins (.meltano/ in the repo) are shared: `make
meltano-install` creates them once.

meltano.yml's `dev` environment reads: FLOWFINITY_SIM_PORT (tap view URLs), PG_HOST, PG_PORT,
PG_USER, PG_PASSWORD, PG_DATABASE (target). Any setting can also be overridden with Meltano's
own <PLUGIN>_<SETTING> variables, e.g. TAP_FLOWFINITY_VIEWS (JSON), TAP_FLOWFINITY_PASSWORD,
TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA, TARGET_POSTGRES_BATCH_SIZE_ROWS.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
# The running interpreter's bin directory: the tap and Meltano installed next to it, whichever
# virtualenv (or CI image) runs the tests.
BIN_DIR = Path(sys.executable).parent
TAP = str(BIN_DIR / "tap-flowfinity")
MELTANO_BIN = Path(os.environ.get("MELTANO_BIN", BIN_DIR / "meltano"))
# `meltano run tap-flowfinity target-postgres` in the dev environment stores its state here.
STATE_ID = "dev:tap-flowfinity-to-target-postgres"
DEFAULT_TIMEOUT_S = 600
# The simulator's dev credentials that meltano.yml's dev environment uses.
DEV_USERNAME = "integration"
DEV_PASSWORD = "dev-simulator-password"


class MeltanoError(RuntimeError):
    """A Meltano command failed; carries its exit code and captured output."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"meltano {' '.join(args)} exited {returncode}:\n{error_lines(stderr)}")


BOX_DRAWING = "│╭╰─"
PLUGIN_LINE = re.compile(r"\] (tap|target)-[\w-]+ ")  # "... [info     ] target-postgres <line>"
ERROR_WORD = re.compile(r"Error|Exception|error:")


def error_lines(stderr: str, limit: int = 40) -> str:
    """What explains a failed run: the plugins' own error lines, then the last lines.

    Meltano ends a failed run with a framed traceback of its own (often just BrokenPipeError
    when a target died), which would push the target's actual error out of a plain tail.
    """
    lines = stderr.splitlines()
    plugin_errors = [line for line in lines if PLUGIN_LINE.search(line) and ERROR_WORD.search(line)]
    tail = [line for line in lines[-limit:] if not line.lstrip().startswith(tuple(BOX_DRAWING))]
    return "\n".join([*plugin_errors[-limit:], "--- last lines ---", *tail[-15:]])


@dataclass
class MeltanoEnv:
    """The environment of one isolated Meltano "installation" (own system DB, own state).

    `pg` is anything with `target_env(dbname)` (a ThrowawayPostgres); `sim_port` is the
    simulator's port; `extra` overrides anything (e.g. TAP_FLOWFINITY_VIEWS). Pass `home`
    (e.g. pytest's tmp_path): the default is a fresh temp dir that nobody deletes.
    """

    pg: Any = None
    dbname: str | None = None
    sim_port: int | None = None
    schema: str | None = None
    views: list[dict[str, Any]] | None = None
    extra: dict[str, str] = field(default_factory=dict)
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ff-meltano-")))
    # A private .meltano (MELTANO_SYS_DIR_ROOT) with its own run/ and the installed plugins
    # linked in: `meltano run` writes each plugin's config to .meltano/run/<plugin>/ and
    # deletes it afterwards, so two test sessions in one checkout would break each other's runs.
    private_run_dir: bool = True

    def __post_init__(self) -> None:
        self.home = Path(self.home)
        self.home.mkdir(parents=True, exist_ok=True)

    def with_extra(self, **extra: str) -> MeltanoEnv:
        """The same installation (system DB, state, home), with more variables set."""
        return replace(self, extra={**self.extra, **extra})

    def reconciling(self) -> MeltanoEnv:
        """The same installation, its runs reconciling every view (`reconcile_every_hours` 0)."""
        return self.with_extra(TAP_FLOWFINITY_RECONCILE_EVERY_HOURS="0")

    @property
    def database_uri(self) -> str:
        """The sqlite URI of this environment's Meltano system database (holds state)."""
        return f"sqlite:///{self.home / 'meltano.db'}"

    def _private_sys_dir(self) -> Path:
        return _link_shared_plugins(self.home / "sys")

    def as_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The full process environment for a Meltano command."""
        env = dict(os.environ if base is None else base)
        # Variables from the caller's shell must not leak into a test's configuration.
        for key in list(env):
            if key.startswith(("TAP_FLOWFINITY_", "TARGET_POSTGRES_", "MELTANO_")):
                del env[key]
        env.update(
            {
                "MELTANO_DATABASE_URI": self.database_uri,
                "MELTANO_ENVIRONMENT": "dev",
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_DISABLE_TRACKING": "true",
                "MELTANO_CLI_LOG_LEVEL": env.get("FF_MELTANO_LOG_LEVEL", "info"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.pg is not None:
            env.update(self.pg.target_env(self.dbname))
        if self.sim_port is not None:
            env["FLOWFINITY_SIM_PORT"] = str(self.sim_port)
        if self.schema is not None:
            env["TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA"] = self.schema
        if self.views is not None:
            env["TAP_FLOWFINITY_VIEWS"] = json.dumps(self.views)
        if self.private_run_dir:
            env["MELTANO_SYS_DIR_ROOT"] = str(self._private_sys_dir())
        env.update(self.extra)
        return env


SHARED_SYS_DIR = REPO_ROOT / ".meltano"
PRIVATE_SYS_ENTRIES = {"run", "logs", "meltano.db"}


def _link_shared_plugins(root: Path) -> Path:
    """`root` as a .meltano whose plugin dirs are the repository's installed ones."""
    (root / "run").mkdir(parents=True, exist_ok=True)
    if SHARED_SYS_DIR.is_dir():
        for entry in SHARED_SYS_DIR.iterdir():
            link = root / entry.name
            if entry.name not in PRIVATE_SYS_ENTRIES and not link.exists():
                link.symlink_to(entry)
    return root


def run_meltano(
    args: Sequence[str],
    env: MeltanoEnv | Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `meltano <args>` in the repo root and capture its output.

    `input` is fed to stdin (e.g. Singer messages for `invoke target-postgres`).

    On timeout the whole process group (meltano, tap, target) is killed, so a hung run
    cannot outlive the test. With `check`, a non-zero exit raises MeltanoError.
    """
    proc = start_meltano(args, env, stdin=input is not None)
    try:
        stdout, stderr = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        stdout, stderr = proc.communicate()
        raise MeltanoError(args, -9, stdout, stderr + f"\n(timed out after {timeout}s)") from None
    except BaseException:
        kill_group(proc)
        raise
    result = subprocess.CompletedProcess(list(args), proc.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        raise MeltanoError(args, proc.returncode, stdout, stderr)
    return result


def start_meltano(
    args: Sequence[str],
    env: MeltanoEnv | Mapping[str, str] | None = None,
    stdin: bool = False,
) -> subprocess.Popen[str]:
    """Start `meltano <args>` in its own process group (for tests that kill it mid-run).

    stdout and stderr are pipes: read them (`communicate`) or the run blocks when they fill.
    """
    return subprocess.Popen(
        [str(MELTANO_BIN), *args],
        cwd=REPO_ROOT,
        env=_resolve_env(env),
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    """Signal a process started by `start_meltano` and everything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def run_job(
    env: MeltanoEnv | Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """The main job, exactly as users run it."""
    return run_meltano(["run", "tap-flowfinity", "target-postgres"], env=env, timeout=timeout)


def get_state(
    state_id: str = STATE_ID, env: MeltanoEnv | Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The stored state for `state_id` ({} when none), as `meltano state get` prints it."""
    out = run_meltano(["state", "get", state_id], env=env, timeout=120).stdout.strip()
    return json.loads(out) if out else {}


def get_bookmarks(
    state_id: str = STATE_ID, env: MeltanoEnv | Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The Singer bookmarks inside the stored state ({} when none)."""
    state = get_state(state_id, env)
    return dict(state.get("singer_state", {}).get("bookmarks", {}))


def list_state_ids(env: MeltanoEnv | Mapping[str, str] | None = None) -> list[str]:
    """Every state id in this environment's system database."""
    out = run_meltano(["state", "list"], env=env, timeout=120).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


# What the main job needs; other plugins (target-jsonl, the target matrix) are installed by the
# tests that use them, so that `make demo` installs only these two.
MAIN_JOB_PLUGINS = ("tap-flowfinity", "target-postgres")


def plugin_executable(name: str) -> Path:
    """Where `meltano install` puts a plugin's executable: .meltano/<type>/<name>/venv/bin/."""
    import yaml

    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    for kind in ("extractors", "loaders"):
        for plugin in project["plugins"].get(kind, []):
            if plugin["name"] == name:
                executable = plugin.get("executable", name)
                return REPO_ROOT / ".meltano" / kind / name / "venv" / "bin" / executable
    raise KeyError(f"no plugin {name!r} in meltano.yml")


def plugins_installed(names: Sequence[str] = MAIN_JOB_PLUGINS) -> bool:
    """Whether `meltano install` has created these plugins' executables in .meltano/."""
    return all(plugin_executable(name).exists() for name in names)


# Held while plugins are installed: the test workers of one `pytest -n` share .meltano/, and
# two `meltano install`s of one plugin at once would rebuild its venv under each other.
INSTALL_LOCK = SHARED_SYS_DIR / ".install.lock"


def ensure_installed(*names: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """`meltano install` the plugins not installed yet (default: the main job's two).

    Each plugin gets its own virtualenv, as Meltano installs it for users. Safe to call from
    several processes at once: one installs while the others wait, then find it installed.
    """
    wanted = names or MAIN_JOB_PLUGINS
    # Checked under the lock: a plugin being installed has its executable before it is whole.
    SHARED_SYS_DIR.mkdir(exist_ok=True)
    with INSTALL_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        missing = [name for name in wanted if not plugins_installed([name])]
        if missing:
            with tempfile.TemporaryDirectory(prefix="ff-meltano-") as home:
                env = MeltanoEnv(home=Path(home), private_run_dir=False)
                run_meltano(["install", *missing], env=env, timeout=timeout)
            precompile_plugins(missing)


def precompile_plugins(names: Sequence[str]) -> None:
    """Byte-compile the plugins' venvs, which Meltano installs without .pyc files.

    Otherwise each `meltano run` that first imports a module compiles it, and tests running
    at the same time all pay for that. A file that does not compile is left to fail at import.
    """
    for name in names:
        venv = plugin_executable(name).parent.parent
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "compileall", "-q", str(venv / "lib")],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=DEFAULT_TIMEOUT_S,
            check=False,
        )


def _resolve_env(env: MeltanoEnv | Mapping[str, str] | None) -> dict[str, str]:
    if env is None:
        return MeltanoEnv().as_env()
    if isinstance(env, MeltanoEnv):
        return env.as_env()
    return dict(env)
