"""Reconciliation on the tap's own output: when a pass runs, what its messages promise.

A pass's RECORDs carry its table version and the ACTIVATE_VERSION comes only after the last
of them (so a target flags nothing the view still shows); the bookmark never moves back; a
stopped pass resumes with the same version. The tap runs in-process against the simulator.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from flowfinity_simulator import Fault, Simulator
from tests.e2e.singer_checks import last_state, sync_in_process, view_config

pytestmark = pytest.mark.e2e  # starts the simulator

PASSWORD = "reconcile-tests-password"


@pytest.fixture
def sim():
    with Simulator(password=PASSWORD, demo_records=30) as server:
        yield server


def config(sim, **extra):
    return view_config(sim, PASSWORD, progress_interval=0, **extra)


def records(messages):
    return [m for m in messages if m["type"] == "RECORD"]


def stream_state(messages):
    return last_state(messages)["bookmarks"]["leads"]


def activations(messages):
    return [m for m in messages if m["type"] == "ACTIVATE_VERSION"]


def assert_a_whole_pass(messages, sim):
    """Every record the view shows, all of one version, activated after the last one."""
    (activate,) = activations(messages)
    version = activate["version"]
    recs = records(messages)
    assert {r["record"]["RecordID"] for r in recs} == set(sim.truth("leads"))
    assert {r.get("version") for r in recs} == {version}
    position = messages.index(activate)
    assert all(messages.index(r) < position for r in recs), "activated before the last record"
    assert messages[-1]["type"] == "STATE", "the STATE recording the pass comes after it"
    assert stream_state(messages)["reconciled"]["version"] == version
    assert "reconciling" not in stream_state(messages)
    return version


def test_a_first_sync_is_a_pass_that_activates_its_version_after_its_last_record(sim, capsys):
    messages = sync_in_process(capsys, config(sim))
    assert_a_whole_pass(messages, sim)


def test_an_incremental_run_carries_no_version_and_activates_nothing(sim, capsys):
    state = last_state(sync_in_process(capsys, config(sim)))
    sim.create("leads")
    messages = sync_in_process(capsys, config(sim), state)
    assert records(messages), "the new record"
    assert all("version" not in r for r in records(messages))
    assert activations(messages) == []


def test_reconcile_every_hours_zero_reconciles_every_run_and_never_moves_the_bookmark_back(
    sim, capsys
):
    first = sync_in_process(capsys, config(sim))
    bookmark = stream_state(first)["replication_key_value"]
    sim.create("leads")
    messages = sync_in_process(capsys, config(sim, reconcile_every_hours=0), last_state(first))
    version = assert_a_whole_pass(messages, sim)
    assert version > activations(first)[0]["version"]
    bookmarks = [
        m["value"]["bookmarks"]["leads"].get("replication_key_value")
        for m in messages
        if m["type"] == "STATE"
    ]
    assert min(b for b in bookmarks if b is not None) >= bookmark
    assert bookmarks[-1] == max(int(r["lastSubmissionId"]) for r in sim.truth("leads").values())


@pytest.mark.parametrize(("age_hours", "reconciles"), [(25, True), (23, False)])
def test_a_pass_runs_when_the_last_completed_one_is_older_than_the_setting(
    sim, capsys, age_hours, reconciles
):
    state = last_state(sync_in_process(capsys, config(sim)))
    then = datetime.now(timezone.utc) - timedelta(hours=age_hours)
    state["bookmarks"]["leads"]["reconciled"]["at"] = then.isoformat()
    messages = sync_in_process(capsys, config(sim, reconcile_every_hours=24), state)
    assert bool(activations(messages)) is reconciles
    assert (len(records(messages)) == len(sim.truth("leads"))) is reconciles


def test_the_setting_is_per_view(sim, capsys):
    views = [
        {"name": "leads", "url": sim.view_url("leads"), "reconcile_every_hours": 0},
        {"name": "visits", "url": sim.view_url("visits")},
    ]
    state = last_state(sync_in_process(capsys, {**config(sim), "views": views}))
    messages = sync_in_process(capsys, {**config(sim), "views": views}, state)
    assert [m["stream"] for m in activations(messages)] == ["leads"]


def test_a_pass_stopped_by_max_run_seconds_activates_nothing_and_the_next_run_finishes_it(
    sim, capsys, caplog
):
    state = last_state(sync_in_process(capsys, config(sim)))
    sim.max_records_per_response = 7
    sim.faults.add(Fault("slow", delay=0.3, times=None))  # the limit passes during answer 1
    stopped = sync_in_process(
        capsys, config(sim, reconcile_every_hours=0, max_run_seconds=0.2), state
    )
    assert activations(stopped) == [], "a pass that did not reach the end activates nothing"
    begun = stream_state(stopped)["reconciling"]
    assert len(records(stopped)) == 7, "stopped after the answer in hand"
    assert {r["version"] for r in records(stopped)} == {begun["version"]}
    assert begun["after"] == max(r["record"]["lastSubmissionId"] for r in records(stopped))
    assert stream_state(stopped)["replication_key_value"] >= begun["after"]

    sim.faults.clear()
    sim.clear_request_log()
    caplog.set_level(logging.INFO)
    finished = sync_in_process(
        capsys, config(sim), last_state(stopped)
    )  # the setting is not even needed
    (activate,) = activations(finished)
    assert activate["version"] == begun["version"], "the same pass, resumed"
    # [0] is discovery's sample; the pass resumes one below its last id (a group may be cut)
    assert sim.cursor_requests("leads")[1] == begun["after"] - 1
    seen = {r["record"]["RecordID"] for r in records(stopped) + records(finished)}
    assert seen == set(sim.truth("leads"))
    assert "reconciling" not in stream_state(finished)
    summary = [r.getMessage() for r in caplog.records if "reconciling) done" in r.getMessage()]
    assert summary and f"the view holds {len(sim.truth('leads'))} records" in summary[0]
