"""A real sync logs progress at the interval and a summary, next to the SDK's METRIC lines."""

from __future__ import annotations

import json
import subprocess

import pytest

from flowfinity_simulator import Simulator
from flowfinity_simulator.faults import Fault
from tests.harness.meltano import DEV_PASSWORD, DEV_USERNAME, TAP

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)


@pytest.mark.slow
def test_progress_lines_and_summary(tmp_path):
    # No bookmark: the first sync is a reconciliation, and its lines say so.
    with Simulator(username=DEV_USERNAME, password=DEV_PASSWORD, synthetic=3000) as sim:
        # About 3 s of dripping body, in two capped requests.
        sim.faults.add(Fault(kind="slow", chunk_delay=0.05, chunk_bytes=16384, times=None))
        sim.faults.add(Fault(kind="cap", cap=2000, times=None))
        config = {
            "username": DEV_USERNAME,
            "password": DEV_PASSWORD,
            "views": [{"name": "leads", "url": sim.view_url("leads")}],
            "progress_interval": 1,
        }
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        result = subprocess.run(
            [TAP, "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    progress = [line for line in lines if "records so far" in line]
    assert progress, result.stderr[-2000:]
    assert "view 'leads' (reconciling): " in progress[0] and "records/s" in progress[0]
    assert "requests" in progress[0] and "retries" in progress[0]
    summary = [line for line in lines if "view 'leads' (reconciling) done: 3000 records" in line]
    # A first sync reconciles. Two capped answers, then (a server seen capping) one request from
    # below the first answer's last id for the rest of its group, one from below the last id
    # that holds only that id's record, and one after it (the cap may have fallen there) that
    # brings nothing: the read is complete.
    assert len(summary) == 1 and "5 requests, 0 retries" in summary[0], summary
    assert "the view holds 3000 records" in summary[0], summary
    assert any('"metric":"record_count"' in line for line in lines)
