"""Late submissions are measured: each run names those it found in its overlap, and how late.

A submission takes its id when it starts and becomes visible when it commits; meanwhile the
tap may read past its id. The next run's overlap (`lookback`) finds it; the tap tells it from
a record merely re-read by the ids earlier runs emitted (kept in the state, bounded), reports
how many ids late it was, and warns, naming the setting, once that reaches half of `lookback`.
"""

from __future__ import annotations

import logging

import pytest

from flowfinity_simulator import Simulator
from tap_flowfinity.lateness import RECENT_IDS_BOUND
from tests.e2e.singer_checks import last_state, sync_in_process, view_config

pytestmark = pytest.mark.e2e  # starts the simulator

PASSWORD = "lateness-tests-password"


@pytest.fixture
def sim():
    with Simulator(password=PASSWORD, demo_records=10) as server:
        yield server


def config(sim, **extra):
    return view_config(sim, PASSWORD, progress_interval=0, **extra)


def run(capsys, cfg, state=None):
    messages = sync_in_process(capsys, cfg, state)
    return messages, last_state(messages)


def late_lines(caplog):
    return [
        r for r in caplog.records if "late" in r.getMessage() and "View 'leads'" in r.getMessage()
    ]


@pytest.mark.parametrize(("ids_between", "warns"), [(600, True), (100, False)])
def test_a_late_submission_is_reported_with_its_lateness_and_warned_past_half_the_lookback(
    sim, capsys, caplog, ids_between, warns
):
    _, state = run(capsys, config(sim, lookback=1000))
    held = sim.hold("leads", {"Company": "Slow Submission Ltd"})
    sim.advance_counter(ids_between)  # other apps' submissions
    sim.create("leads")  # visible, above the held id: the next run reads past it
    _, state = run(capsys, config(sim, lookback=1000), state)
    bookmark = state["bookmarks"]["leads"]["replication_key_value"]
    held.release()

    caplog.clear()
    caplog.set_level(logging.INFO)
    messages, _ = run(capsys, config(sim, lookback=1000), state)
    held_id = int(held.record["lastSubmissionId"])
    assert held.record["RecordID"] in {
        m["record"]["RecordID"] for m in messages if m["type"] == "RECORD"
    }
    lines = [r.getMessage() for r in late_lines(caplog)]
    named = [line for line in lines if held.record["RecordID"] in line]
    assert named == [
        f"View 'leads': record {held.record['RecordID']} (submission id {held_id}) was not "
        f"visible when an earlier run read past it: found {bookmark - held_id} ids late"
    ]
    assert any("1 late submissions found" in line for line in lines), lines
    warnings = [r for r in late_lines(caplog) if r.levelno == logging.WARNING]
    assert bool(warnings) is warns
    if warns:
        assert "`lookback`" in warnings[0].getMessage()


def test_records_merely_reread_in_the_overlap_are_not_late(sim, capsys, caplog):
    _, state = run(capsys, config(sim, lookback=100000))
    sim.create("leads")
    _, state = run(capsys, config(sim, lookback=100000), state)
    caplog.set_level(logging.INFO)
    messages, _ = run(capsys, config(sim, lookback=100000), state)
    assert len([m for m in messages if m["type"] == "RECORD"]) == 11, "the overlap re-read all"
    assert late_lines(caplog) == []


def test_the_memory_in_the_state_is_bounded(sim, capsys):
    for _ in range(RECENT_IDS_BOUND + 50):
        sim.create("leads")
    _, state = run(capsys, config(sim, lookback=10**9))
    memory = state["bookmarks"]["leads"]["recent_ids"]
    assert len(memory["ids"]) == RECENT_IDS_BOUND
    assert memory["from"] == min(memory["ids"]) - 1, "older ids are not claimed as known"
    assert memory["to"] == max(memory["ids"])
