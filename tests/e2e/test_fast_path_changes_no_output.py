"""The fast path and the seam's own record loop change the tap's speed, never its output.

The same sync runs twice against the same simulator, with both on and both off (off: every
record goes through the SDK's own record loop, selection, conformance, stream maps and message
objects); the Singer messages must be equal one by one, except clock readings
(`time_extracted`, a reconciliation's table version). Each scenario also checks that the fast
run did take the fast path and the plain loop, so the comparison is not between two runs of
the SDK's path.
"""

from __future__ import annotations

import copy
import json
import typing as t

import pytest
from singer_sdk.exceptions import AbortedSyncPausedException

from flowfinity_simulator import Simulator
from tap_flowfinity.fastpath import FastRecordMessages
from tap_flowfinity.sdk_seam import SeamStream
from tap_flowfinity.tap import TapFlowfinity
from tap_flowfinity.writer import FlowfinityWriter
from tests.harness.singer_clocks import without_clocks

pytestmark = pytest.mark.e2e  # starts the simulator

PASSWORD = "fast-path-password"


@pytest.fixture
def sim() -> t.Iterator[Simulator]:
    with Simulator(password=PASSWORD, demo_records=40, seed=3) as server:
        # What a real view brings mid-history: a field discovery did not sample, a deleted
        # record, a value that misfits its declared type, an exact decimal, nested JSON.
        ids = sorted(server.truth("leads"))
        server.create("leads", {"Region": "Nord", "Tags": {"Selection": ["a", "b"]}})
        # Deleted with a deletion time of its own: the default (when it was read) is a clock
        # reading, like time_extracted, and would differ between the two runs.
        server.update("leads", ids[3], {"State": "Deleted", "DeletedOn": "2024-05-06T07:08:09"})
        server.create("leads", {"EmployeeCount": "about 20", "TotalValue": "12345678901234567.89"})
        server.create("leads", {"Photo": {"Url": "https://x/p.png", "Size": 1024}, "Flag": True})
        yield server


def config(sim: Simulator, **extra: t.Any) -> dict[str, t.Any]:
    view = {
        "name": "leads",
        "url": sim.view_url("leads"),
        "field_types": {"EmployeeCount": "integer", "TotalValue": "number"},
        "deleted_at_field": "DeletedOn",
    }
    return {
        "username": "integration",
        "password": PASSWORD,
        "views": [view],
        "discovery_sample_size": 5,
        "state_message_frequency": 7,
        **extra,
    }


def catalog_deselecting(cfg: dict[str, t.Any], field: str) -> dict[str, t.Any]:
    catalog = copy.deepcopy(TapFlowfinity(config=cfg).catalog_dict)
    for entry in catalog["streams"][0]["metadata"]:
        crumb = entry["breadcrumb"]
        entry["metadata"]["selected"] = not (crumb and crumb[-1] == field)
    return catalog


def sync(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    cfg: dict[str, t.Any],
    catalog: dict[str, t.Any] | None,
    *,
    fast: bool,
) -> tuple[list[dict[str, t.Any]], int]:
    """The run's messages, clock readings masked, and how many records took the writer's
    direct path."""
    direct = plain_loops = 0
    write_record = FlowfinityWriter.write_record
    plain_record_loop = SeamStream.plain_record_loop

    def counting(self: FlowfinityWriter, *args: t.Any) -> None:
        nonlocal direct
        direct += 1
        write_record(self, *args)

    def counting_loops(self: SeamStream) -> t.Generator[dict[str, t.Any], t.Any, t.Any]:
        nonlocal plain_loops
        plain_loops += 1
        return plain_record_loop(self)

    with monkeypatch.context() as patch:
        patch.setattr(FastRecordMessages, "fast_path", fast)
        patch.setattr(SeamStream, "use_plain_record_loop", fast)
        patch.setattr(FlowfinityWriter, "write_record", counting)
        patch.setattr(SeamStream, "plain_record_loop", counting_loops)
        capsys.readouterr()
        TapFlowfinity(config=cfg, catalog=copy.deepcopy(catalog)).sync_all()
        out = capsys.readouterr().out
    assert plain_loops == (1 if fast else 0), "the plain record loop was (not) taken"
    return without_clocks(json.loads(line) for line in out.splitlines()), direct


SCENARIOS: dict[str, dict[str, t.Any]] = {
    "default": {},
    "stream maps": {"stream_maps": {"leads": {"EmailAddress": "md5(EmailAddress)"}}},
    "alias": {"stream_maps": {"leads": {"__alias__": "prospects"}}},
    "flattening": {"flattening_enabled": True, "flattening_max_depth": 2},
    "unflattened selections": {"flatten_selections": False},
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fast_path_on_and_off_write_the_same_messages(
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
) -> None:
    cfg = config(sim, **SCENARIOS[scenario])
    slow, slow_direct = sync(capsys, monkeypatch, cfg, None, fast=False)
    fast, fast_direct = sync(capsys, monkeypatch, cfg, None, fast=True)
    assert slow_direct == 0
    records = [m for m in fast if m["type"] == "RECORD"]
    assert len(records) == len(sim.truth("leads"))
    if scenario in {"default", "unflattened selections"}:
        assert fast_direct > len(records) // 2, "the fast run took the direct path"
    assert len(fast) == len(slow)
    for index, (a, b) in enumerate(zip(fast, slow, strict=True)):
        assert a == b, f"message {index} differs"


def test_fast_path_with_a_deselected_field_writes_what_the_sdk_writes(
    sim: Simulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(sim)
    catalog = catalog_deselecting(cfg, "EmailAddress")
    slow, _ = sync(capsys, monkeypatch, cfg, catalog, fast=False)
    fast, _ = sync(capsys, monkeypatch, cfg, catalog, fast=True)
    assert fast == slow
    assert all("EmailAddress" not in m.get("record", {}) for m in fast)


@pytest.mark.parametrize("plain", [True, False], ids=["plain loop", "SDK loop"])
def test_a_record_limit_stops_either_loop_after_as_many_records(
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    plain: bool,
) -> None:
    """The SDK's dry-run limit (`ABORT_AT_RECORD_COUNT`) holds in the plain loop too."""
    monkeypatch.setattr(SeamStream, "use_plain_record_loop", plain)
    tap = TapFlowfinity(config=config(sim))
    stream = tap.streams["leads"]
    monkeypatch.setattr(stream, "ABORT_AT_RECORD_COUNT", 5)
    capsys.readouterr()
    with pytest.raises(AbortedSyncPausedException):  # the SDK's answer to the limit
        tap.sync_all()
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len([m for m in out if m["type"] == "RECORD"]) == 5
