"""The tap is target-agnostic: the same sync piped into a file-based Singer target.

`tap-flowfinity | target-jsonl` through a plain Unix pipe (no Meltano, no PostgreSQL): every
record of the view arrives once, the cursor as an integer, and the target echoes the tap's
final STATE, which resumes the next run from the bookmark.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import pipe

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)


def test_pipe_into_target_jsonl(simulator, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    tap_config = tmp_path / "tap.json"
    tap_config.write_text(
        json.dumps(
            {
                "username": simulator.username,
                "password": "dev-simulator-password",
                "views": [{"name": k, "url": simulator.view_url(k)} for k in simulator.view_keys()],
            }
        )
    )
    target_config = tmp_path / "target.json"
    target_config.write_text(json.dumps({"destination_path": str(out), "do_timestamp_file": False}))

    states = pipe(tap_config, "target-jsonl", target_config)

    for key in simulator.view_keys():
        lines = (out / f"{key}.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        truth = simulator.truth(key)
        assert sorted(r["RecordID"] for r in records) == sorted(truth)
        for record in records:
            assert record["lastSubmissionId"] == int(truth[record["RecordID"]]["lastSubmissionId"])
    bookmarks = states[-1]["bookmarks"]
    for key in simulator.view_keys():
        newest = max(int(r["lastSubmissionId"]) for r in simulator.truth(key).values())
        assert bookmarks[key]["replication_key_value"] == newest

    # The state the target echoed resumes the next run after the bookmark (less the lookback).
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(states[-1]))
    simulator.clear_request_log()
    pipe(tap_config, "target-jsonl", target_config, state=state_file)
    leads_cursors = [c for c in simulator.cursor_requests("leads") if c is not None]
    assert leads_cursors[0] == bookmarks["leads"]["replication_key_value"] - 1000
