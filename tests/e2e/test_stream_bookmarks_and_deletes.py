"""ViewStream's logic — where a run starts, bookmarks, soft deletes — over the simulator's HTTP."""

from __future__ import annotations

import json

import pytest

from flowfinity_simulator import Fault, Simulator
from tap_flowfinity.errors import UnsortedView
from tap_flowfinity.tap import TapFlowfinity
from tests.e2e.singer_checks import sync_in_process, view_config

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

PASSWORD = "stream-tests-password"


@pytest.fixture
def sim():
    with Simulator(password=PASSWORD, demo_records=12) as server:
        yield server


def config(sim, **extra):
    return view_config(sim, PASSWORD, **extra)


def records(messages):
    return [m["record"] for m in messages if m["type"] == "RECORD"]


def bookmark_of(message):
    return message["value"]["bookmarks"]["leads"].get("replication_key_value")


def state_of(value):
    return {"bookmarks": {"leads": {"replication_key": "lastSubmissionId", **value}}}


def newest(sim):
    return max(int(r["lastSubmissionId"]) for r in sim.truth("leads").values())


def test_first_run_reads_everything_without_a_cursor(sim, capsys):
    messages = sync_in_process(capsys, config(sim))
    assert len(records(messages)) == 12
    assert sim.cursor_requests("leads")[-2:] == [None, newest(sim)]


def test_state_is_never_ahead_of_the_records_written(sim, capsys):
    messages = sync_in_process(capsys, config(sim, state_message_frequency=3))
    written = 0
    interim = 0
    for message in messages:
        if message["type"] == "RECORD":
            written = max(written, message["record"]["lastSubmissionId"])
        elif message["type"] == "STATE" and bookmark_of(message) is not None:
            assert bookmark_of(message) <= written
            interim += 1
    assert interim >= 4, "STATE during the stream, not only at its end"
    assert bookmark_of(messages[-1]) == newest(sim)


def test_resume_asks_from_the_bookmark_less_the_lookback(sim, capsys):
    ids = sorted(int(r["lastSubmissionId"]) for r in sim.truth("leads").values())
    bookmark = ids[8]
    sim.clear_request_log()
    messages = sync_in_process(
        capsys, config(sim, lookback=0), state_of({"replication_key_value": bookmark})
    )
    assert sim.cursor_requests("leads")[1] == bookmark  # [0] is discovery's sample
    assert [r["lastSubmissionId"] for r in records(messages)] == ids[9:]

    sim.clear_request_log()
    messages = sync_in_process(
        capsys, config(sim, lookback=250), state_of({"replication_key_value": bookmark})
    )
    assert sim.cursor_requests("leads")[1] == bookmark - 250
    reread = [r["lastSubmissionId"] for r in records(messages)]
    assert reread == [i for i in ids if i > bookmark - 250]
    states = [bookmark_of(m) for m in messages if m["type"] == "STATE"]
    assert min(s for s in states if s is not None) >= bookmark, "overlap never moves it back"
    assert states[-1] == ids[-1]


def test_string_bookmark_from_a_hand_written_state(sim, capsys):
    ids = sorted(int(r["lastSubmissionId"]) for r in sim.truth("leads").values())
    state = state_of({"replication_key_value": str(ids[5])})
    messages = sync_in_process(capsys, config(sim, lookback=0), state)
    assert [r["lastSubmissionId"] for r in records(messages)] == ids[6:]
    assert bookmark_of(messages[-1]) == ids[-1]


def test_start_last_submission_id_without_a_bookmark(sim, capsys):
    ids = sorted(int(r["lastSubmissionId"]) for r in sim.truth("leads").values())
    messages = sync_in_process(capsys, config(sim, start_last_submission_id=ids[9]))
    assert [r["lastSubmissionId"] for r in records(messages)] == ids[10:]


def test_deleted_state_sets_and_restore_clears_deleted_at(sim, capsys):
    victim = sorted(sim.truth("leads"))[2]
    sim.delete("leads", victim)
    deleted = {r["RecordID"]: r for r in records(sync_in_process(capsys, config(sim)))}[victim]
    assert deleted["_sdc_deleted_at"].endswith("+00:00")
    sim.restore("leads", victim)
    restored = {r["RecordID"]: r for r in records(sync_in_process(capsys, config(sim)))}[victim]
    assert restored["_sdc_deleted_at"] is None


def test_custom_deleted_states_and_deleted_at_field(sim, capsys):
    victim = sorted(sim.truth("leads"))[1]
    sim.update("leads", victim, {"State": "Archived", "ArchivedOn": "2024-01-02T03:04:05.000"})
    cfg = config(sim, deleted_states=["Archived"], deleted_at_field="ArchivedOn")
    rows = {r["RecordID"]: r for r in records(sync_in_process(capsys, cfg))}
    assert rows[victim]["_sdc_deleted_at"] == "2024-01-02T03:04:05.000"
    assert all(r["_sdc_deleted_at"] is None for k, r in rows.items() if k != victim)


def test_record_id_keeps_leading_zeros_and_cursor_is_an_int(sim, capsys):
    for record in records(sync_in_process(capsys, config(sim))):
        assert isinstance(record["RecordID"], str) and record["RecordID"].startswith("000")
        assert type(record["lastSubmissionId"]) is int


def test_unsorted_view_fails_and_takes_back_the_runs_bookmarks(sim, capsys):
    ids = sorted(int(r["lastSubmissionId"]) for r in sim.truth("leads").values())
    start = state_of({"replication_key_value": ids[2]})
    tap = TapFlowfinity(config=config(sim, lookback=0, state_message_frequency=1), state=start)
    sim.faults.add(Fault("unsorted", view="leads", times=None))  # after discovery's sample
    with pytest.raises(UnsortedView, match="sort the view by Last submission ID"):
        tap.sync_all()
    messages = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    states = [m for m in messages if m["type"] == "STATE"]
    assert any(bookmark_of(m) == ids[-1] for m in states), "a bookmark ran ahead mid-run"
    assert bookmark_of(states[-1]) == ids[2], "the final STATE is the run's starting bookmark"


@pytest.mark.parametrize("flatten", [True, False], ids=["flattened", "selections-as-json"])
def test_a_state_sent_as_a_choice_flags_the_record_deleted(sim, capsys, flatten):
    victim, alive = sorted(sim.truth("leads"))[2:4]
    sim.update("leads", victim, {"State": {"Selection": "Deleted"}})
    sim.update("leads", alive, {"State": {"Selection": "Open"}})
    cfg = config(sim, flatten_selections=flatten)
    rows = {r["RecordID"]: r for r in records(sync_in_process(capsys, cfg))}
    assert rows[victim]["_sdc_deleted_at"] is not None
    assert rows[alive]["_sdc_deleted_at"] is None
    assert all(r["_sdc_deleted_at"] is None for k, r in rows.items() if k != victim)


def test_deleted_at_field_is_taken_after_its_conversion_to_utc(sim, capsys):
    """With `timezone`, the deletion time is the UTC one its own column holds, not local."""
    victim = sorted(sim.truth("leads"))[1]
    sim.update("leads", victim, {"State": "Deleted", "DeletedOn": "2024-01-02T03:04:05.000"})
    cfg = config(sim, deleted_at_field="DeletedOn", timezone="America/Vancouver")
    cfg["views"][0]["field_types"] = {"DeletedOn": "date-time"}
    row = {r["RecordID"]: r for r in records(sync_in_process(capsys, cfg))}[victim]
    assert row["DeletedOn"] == "2024-01-02T11:04:05+00:00"
    assert row["_sdc_deleted_at"] == "2024-01-02T11:04:05+00:00"
