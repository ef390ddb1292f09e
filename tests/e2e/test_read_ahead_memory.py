"""A first sync behind a slow reader of its output keeps its memory small.

When the tap's stdout is not read for a while (a target that pushes back, a busy machine), the
view's reader thread reads ahead until the read-ahead buffer is full (prefetch.py); what it
holds then is the tap's peak memory. The tap runs as users run it, as its own process, against
two simulator views (a run of one view reads nothing ahead), the first larger than the buffer,
with nobody reading its stdout for a second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowfinity_simulator import Simulator

pytestmark = pytest.mark.e2e  # starts the simulator

TAP = Path(sys.executable).parent / "tap-flowfinity"  # the installed command users run
# The tap's peak RSS as `benchmarks/run.py` measures it: a child's own peak, which a child of
# the test process would not give (its peak counts the test process's pages from before exec).
TIME = "/usr/bin/time"
PASSWORD = "memory-password"
RECORDS = 30_000
# README "Scaling": the tap's peak RSS stays under this whatever the history or the reader.
PEAK_RSS_LIMIT_MIB = 64


@pytest.mark.skipif(shutil.which(TIME) is None, reason=f"needs {TIME} to measure peak RSS")
def test_peak_memory_behind_a_blocked_stdout_stays_under_the_limit(tmp_path: Path) -> None:
    report = tmp_path / "time.txt"
    with Simulator(password=PASSWORD, synthetic=RECORDS) as sim:
        config = tmp_path / "config.json"
        views = [{"name": name, "url": sim.view_url(name)} for name in ("leads", "visits")]
        config.write_text(
            json.dumps({"username": "integration", "password": PASSWORD, "views": views})
        )
        tap = subprocess.Popen(
            [TIME, "-f", "%M", "-o", str(report), str(TAP), "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert tap.stdout is not None
        time.sleep(1.5)  # stdout unread: the writer blocks, the reader fills the buffer
        lines = sum(1 for _ in tap.stdout)
        assert tap.wait(timeout=60) == 0
    assert lines > RECORDS, "every record came out"
    peak_mib = int(report.read_text().split()[-1]) / 1024  # kilobytes
    assert peak_mib < PEAK_RSS_LIMIT_MIB, f"peak RSS {peak_mib:.0f} MiB"
