"""The late-visible race: a submission whose id was taken before a larger one became visible.

If Flowfinity assigns `lastSubmissionId` when a submission starts, a slow one becomes visible
after a larger id was already read and bookmarked; asking strictly "greater than the bookmark"
skips it for good. The `lookback` overlap re-reads the ids just below the bookmark on every
run. Shown here over real HTTP with the simulator's held submissions: lost with lookback=0,
delivered with the default (1000), and the documented bound (a delay of more than `lookback`
submission ids site-wide is still lost).
"""

from __future__ import annotations

import pytest

from flowfinity_simulator import Simulator
from tap_flowfinity.settings import schema_default
from tap_flowfinity.tap import TapFlowfinity
from tests.e2e.singer_checks import STREAM, bookmark, parse_output

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

DEFAULT_LOOKBACK = schema_default("lookback")

PASSWORD = "late-visible-password"


@pytest.fixture
def sim():
    with Simulator(password=PASSWORD, demo_records=10) as server:
        yield server


class DurableTarget:
    """What a Singer target that upserts by RecordID and stores the last STATE ends up with."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.state: dict | None = None

    def run(self, capsys, sim, **settings) -> None:
        config = {
            "username": "integration",
            "password": PASSWORD,
            "views": [{"name": STREAM, "url": sim.view_url("leads")}],
            **settings,
        }
        TapFlowfinity(config=config, state=self.state).sync_all()
        for message in parse_output(capsys.readouterr().out):
            if message["type"] == "RECORD":
                record = message["record"]
                self.rows[record["RecordID"]] = record["lastSubmissionId"]
            elif message["type"] == "STATE":
                self.state = message["value"]

    def missing(self, sim) -> set[str]:
        truth = sim.truth("leads")
        return {rid for rid, r in truth.items() if self.rows.get(rid) != int(r["lastSubmissionId"])}


def race(capsys, sim, target, *, other_submissions: int = 0, **settings) -> str:
    """Run, start a slow submission, let a later one commit and be read, then release it."""
    target.run(capsys, sim, **settings)
    slow = sim.hold("leads", {"Company": "Slow Submit Ltd"})
    sim.advance_counter(other_submissions)
    fast = sim.create("leads", {"Company": "Fast Submit Inc"})
    assert int(fast["lastSubmissionId"]) > slow.submission_id
    target.run(capsys, sim, **settings)
    assert bookmark({"value": target.state}) == int(fast["lastSubmissionId"])
    assert slow.record_id not in target.rows, "invisible while the bookmark passed its id"
    slow.release()
    target.run(capsys, sim, **settings)
    target.run(capsys, sim, **settings)  # and any number of runs after
    return slow.record_id


def test_without_lookback_a_late_visible_submission_is_lost(capsys, sim):
    target = DurableTarget()
    slow = race(capsys, sim, target, lookback=0)
    assert target.missing(sim) == {slow}, "lookback=0 skips it for good"


def test_with_the_default_lookback_it_is_delivered(capsys, sim):
    target = DurableTarget()
    slow = race(capsys, sim, target, other_submissions=DEFAULT_LOOKBACK // 2)
    assert slow in target.rows
    assert target.missing(sim) == set()


def test_the_overlap_is_bounded_a_longer_delay_is_still_lost(capsys, sim):
    """The documented limit: more than `lookback` submission ids site-wide during the delay."""
    target = DurableTarget()
    slow = race(capsys, sim, target, other_submissions=DEFAULT_LOOKBACK + 10)
    assert target.missing(sim) == {slow}
