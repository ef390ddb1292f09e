"""Records sharing one submission id are each emitted once per run, whatever the cap cuts.

Checked on the tap's own output, not through an upserting target (which would hide a record
emitted twice). A view whose ids are unique, served whole, asks exactly as the recipe says.
"""

from __future__ import annotations

from collections import Counter

import pytest

from flowfinity_simulator import Simulator
from flowfinity_simulator.variants import Variants
from tests.e2e.singer_checks import last_state, sync_in_process, view_config

pytestmark = pytest.mark.e2e  # starts the simulator

PASSWORD = "equal-ids-tests-password"


def config(sim, **extra):
    return view_config(sim, PASSWORD, progress_interval=0, **extra)


def run(capsys, cfg, state=None):
    messages = sync_in_process(capsys, cfg, state)
    return messages, last_state(messages)


def pairs(messages):
    return Counter(
        (m["record"]["RecordID"], m["record"]["lastSubmissionId"])
        for m in messages
        if m["type"] == "RECORD"
    )


def truth_pairs(sim):
    return {(rid, int(r["lastSubmissionId"])) for rid, r in sim.truth("leads").items()}


@pytest.mark.parametrize("lookback", [0, 1000])
def test_a_cap_right_after_the_first_record_of_the_first_group_loses_nothing(capsys, lookback):
    with Simulator(password=PASSWORD, demo_records=5) as sim:
        _, state = run(capsys, config(sim, lookback=lookback))
        before = set(sim.truth("leads"))
        sim.create("leads")
        sim.create("leads")
        group = sim.create_together("leads", [None, None, None])
        sim.create("leads")
        sim.create("leads")
        # The first answer of the next run ends right after the group's first record.
        above = lookback and len(before)  # the overlap re-reads the first sync's records
        sim.max_records_per_response = above + 3
        messages, state = run(capsys, config(sim, lookback=lookback), state)
        emitted = pairs(messages)
        assert all(count == 1 for count in emitted.values()), emitted
        assert {(r["RecordID"], int(r["lastSubmissionId"])) for r in group} <= set(emitted)
        new = truth_pairs(sim) - {p for p in truth_pairs(sim) if p[0] in before}
        assert new <= set(emitted)


@pytest.mark.parametrize("cap", [3, 4, 5, 7])
def test_every_pair_is_emitted_once_per_run_on_a_view_of_transactions_under_a_cap(capsys, cap):
    variants = Variants(records_per_submission=3)
    with Simulator(
        password=PASSWORD, demo_records=20, variants=variants, max_records_per_response=cap
    ) as sim:
        messages, state = run(capsys, config(sim, lookback=0))
        assert set(pairs(messages)) == truth_pairs(sim)
        assert max(pairs(messages).values()) == 1
        for record_id in list(sim.truth("leads"))[:4]:
            sim.update("leads", record_id, {"Summary": "changed"})
        sim.create_together("leads", [None, None, None])
        messages, _ = run(capsys, config(sim, lookback=0), state)
        assert max(pairs(messages).values()) == 1
        changed = {
            p
            for p in truth_pairs(sim)
            if p[1] > state["bookmarks"]["leads"]["replication_key_value"]
        }
        assert set(pairs(messages)) == changed


def test_a_view_of_unique_ids_served_whole_asks_as_the_recipe_says(capsys):
    with Simulator(password=PASSWORD, demo_records=12) as sim:
        _, state = run(capsys, config(sim))
        first = sorted(int(r["lastSubmissionId"]) for r in sim.truth("leads").values())
        sim.create("leads")
        sim.clear_request_log()
        run(capsys, config(sim, lookback=0), state)
        newest = max(int(r["lastSubmissionId"]) for r in sim.truth("leads").values())
        # discovery's sample, the read from the bookmark, the empty answer after the last id
        assert sim.cursor_requests("leads") == [first[-1], first[-1], newest]


def test_a_group_longer_than_the_cap_is_named_and_the_read_goes_on_past_it(capsys, caplog):
    variants = Variants(records_per_submission=3)
    with Simulator(
        password=PASSWORD, demo_records=12, variants=variants, max_records_per_response=2
    ) as sim:
        messages, _ = run(capsys, config(sim, lookback=0))
        emitted = pairs(messages)
        assert max(emitted.values()) == 1
        newest = max(p[1] for p in truth_pairs(sim))
        assert newest in {p[1] for p in emitted}, "the read reached the end of the view"
        assert any("more records may share that id" in r.getMessage() for r in caplog.records)
