"""Views read in parallel: the Singer output is the sequential run's, message for message.

The tap reads up to `max_parallel_views` views at once (prefetch.py) while the Singer SDK
still writes the streams one after another. Each test runs the real CLI against one
simulator with ten views, once with `max_parallel_views: 1` (one view at a time, no threads)
and once with the default, and compares the two outputs: every RECORD and STATE, in order
(`time_extracted` aside). A failing view fails both runs the same way, naming that view,
with the same bookmarks out for the views before it.
"""

from __future__ import annotations

import copy
import json
import subprocess

import pytest

from flowfinity_simulator import Fault, Simulator
from tap_flowfinity.settings import schema_default
from tap_flowfinity.tap import TapFlowfinity
from tests.e2e.singer_checks import (
    assert_exactly_once,
    bookmark,
    error_lines,
    parse_output,
    run_cli,
    versions,
    write_json,
)
from tests.harness.meltano import TAP
from tests.harness.singer_clocks import without_clocks

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

PASSWORD = "parallel-password"
VIEWS = 10
FAILING_AT = 6  # the seventh view the run syncs fails


@pytest.fixture
def sim():
    with Simulator(password=PASSWORD, extra_apps=VIEWS - 2, demo_records=40) as server:
        yield server


def config(sim, **extra):
    return {
        "username": "integration",
        "password": PASSWORD,
        "views": [{"name": key, "url": sim.view_url(key)} for key in sim.view_keys()],
        "state_message_frequency": 7,  # several STATEs per stream
        **extra,
    }


def catalog(tmp_path, cfg):
    """Discovery once, so the runs compared read the views only to sync them."""
    done = subprocess.run(
        [TAP, "--config", write_json(tmp_path / "discover.json", cfg), "--discover"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def sync_order(cfg, cat):
    """The views in the order the SDK syncs their streams (by name, whatever the config's)."""
    return list(TapFlowfinity(config=cfg, catalog=cat).streams)


def comparable(messages):
    """The messages with their clock readings masked (the only values that may differ)."""
    return without_clocks(messages)


def run_both(tmp_path, sim, cfg, *faults, state=None, cat=None):
    """(sequential, parallel) runs, each as (exit status, messages, stderr, request log)."""
    cat = cat or catalog(tmp_path, cfg)
    results = []
    for parallel in (1, schema_default("max_parallel_views")):
        sim.faults.clear()
        sim.faults.add(*copy.deepcopy(faults))  # each run meets the faults anew
        sim.clear_request_log()
        run_dir = tmp_path / f"parallel-{parallel}"
        run_dir.mkdir()
        status, messages, stderr = run_cli(
            run_dir, {**cfg, "max_parallel_views": parallel}, catalog=cat, state=state
        )
        results.append((status, messages, stderr, sim.requests))
    return results


def final_bookmarks(messages):
    last = [m for m in messages if m["type"] == "STATE"][-1]["value"]["bookmarks"]
    return {view: entry.get("replication_key_value") for view, entry in last.items()}


def newest(sim, key):
    return max(int(r["lastSubmissionId"]) for r in sim.truth(key).values())


def test_the_default_reads_views_in_parallel():
    """The premise of the other tests: the default is more than one view at a time."""
    assert schema_default("max_parallel_views") > 1


def test_parallel_output_is_the_sequential_output(tmp_path, sim):
    cfg = config(sim)
    cat = catalog(tmp_path, cfg)
    keys = sync_order(cfg, cat)
    # Some views resume from a bookmark (less the lookback), the others start from scratch.
    middle = {
        key: sorted(int(r["lastSubmissionId"]) for r in sim.truth(key).values())[20]
        for key in keys[::3]
    }
    state = {
        "bookmarks": {
            key: {"replication_key": "lastSubmissionId", "replication_key_value": value}
            for key, value in middle.items()
        }
    }
    cfg["lookback"] = 0
    # The first view answers slowly once: read in parallel, the others are asked meanwhile.
    slow_first = Fault("slow", view=keys[0], delay=5.0)
    (s_status, sequential, _, s_log), (p_status, parallel, p_err, p_log) = run_both(
        tmp_path, sim, cfg, slow_first, state=state, cat=cat
    )
    assert s_status == 0 and p_status == 0, p_err[-2000:]
    assert comparable(parallel) == comparable(sequential)
    for key in keys:
        assert_exactly_once(parallel, versions(sim.truth(key), middle.get(key)), key)
        assert final_bookmarks(parallel)[key] == newest(sim, key)

    def first_request_of_another_view_before_second_of_first(log):
        views = [r["view"] for r in log if r.get("view")]
        second_of_first = [i for i, v in enumerate(views) if v == keys[0]][1]
        return views.index(keys[1]) < second_of_first

    assert not first_request_of_another_view_before_second_of_first(s_log)
    assert first_request_of_another_view_before_second_of_first(p_log), "not read in parallel"
    # Each view's requests are the same: the same cursors, in the same order.
    for key in keys:
        assert [r["cursor"] for r in p_log if r.get("view") == key] == [
            r["cursor"] for r in s_log if r.get("view") == key
        ]
    # One summary per view, in the order the streams were written.
    summaries = [line for line in p_err.splitlines() if " done: " in line]
    assert [line.split("view '", 1)[1].split("'", 1)[0] for line in summaries] == keys
    for line, key in zip(summaries, keys, strict=True):
        assert f"{len(versions(sim.truth(key), middle.get(key)))} records" in line


def incremental_state_with_new_records(sim):
    """A state at each view's newest id, then three new records in every view."""
    state = {
        "bookmarks": {
            key: {"replication_key": "lastSubmissionId", "replication_key_value": newest(sim, key)}
            for key in sim.view_keys()
        }
    }
    old = {key: newest(sim, key) for key in sim.view_keys()}
    for _ in range(3):
        for key in sim.view_keys():
            sim.create(key)
    return state, old


@pytest.mark.parametrize(
    "fault, says",
    [
        (dict(kind="status", status=401), "rejected the credentials"),
        (dict(kind="unsorted", order="swap_last"), "not sorted ascending"),
    ],
    ids=["401", "unsorted"],
)
def test_a_failing_view_fails_the_run_naming_it_with_earlier_bookmarks_exact(
    tmp_path, sim, fault, says
):
    cfg = config(sim, lookback=0)
    cat = catalog(tmp_path, cfg)
    keys = sync_order(cfg, cat)
    failing = keys[FAILING_AT]
    state, old = incremental_state_with_new_records(sim)
    runs = run_both(
        tmp_path, sim, cfg, Fault(view=failing, times=None, **fault), state=state, cat=cat
    )
    (_, sequential, _, _), (status, parallel, stderr, _) = runs
    assert status != 0
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr[-2000:]
    assert f"view {failing!r}" in errors[0] and says in errors[0]
    assert PASSWORD not in stderr
    assert comparable(parallel) == comparable(sequential)
    bookmarks = final_bookmarks(parallel)
    for key in keys[:FAILING_AT]:
        assert bookmarks[key] == newest(sim, key), key
        assert_exactly_once(parallel, versions(sim.truth(key), old[key]), key)
    for key in keys[FAILING_AT:]:
        assert bookmarks[key] == old[key], key  # the failing view's and the later ones' stay
    written = {m["stream"] for m in parallel if m["type"] == "RECORD"}
    assert written <= set(keys[: FAILING_AT + 1])


def test_retries_happen_in_the_reader_and_change_nothing(tmp_path, sim):
    cfg = config(sim)
    busy = Fault("status", status=503, view="app05", headers={"Retry-After": "0"}, times=2)
    (_, sequential, _, _), (status, parallel, stderr, log) = run_both(tmp_path, sim, cfg, busy)
    assert status == 0, stderr[-2000:]
    assert comparable(parallel) == comparable(sequential)
    assert stderr.count("Retrying view 'app05'") == 2
    assert [r["status"] for r in log if r.get("view") == "app05"][:3] == [503, 503, 200]


def test_deselected_views_are_never_read(tmp_path, sim):
    cfg = config(sim)
    cat = catalog(tmp_path, cfg)
    for entry in cat["streams"]:
        if entry["tap_stream_id"] in ("visits", "app06"):
            for meta in entry["metadata"]:
                if meta["breadcrumb"] == []:
                    meta["metadata"]["selected"] = False
    (_, sequential, _, _), (status, parallel, stderr, log) = run_both(tmp_path, sim, cfg, cat=cat)
    assert status == 0, stderr[-2000:]
    assert comparable(parallel) == comparable(sequential)
    assert {r["view"] for r in log if r.get("view")} == set(sim.view_keys()) - {"visits", "app06"}
    assert not {m["stream"] for m in parallel if m.get("stream")} & {"visits", "app06"}


def test_no_reader_thread_outlives_a_failed_run(capsys):
    """In-process: the run fails on the second view; every reader thread ends soon after.

    The streams sync in name order (app03, app04, leads, visits); `leads` is long (more
    records than a reader buffers), so its reader would wait on its full buffer for ever if
    the failure did not stop it.
    """
    with Simulator(password=PASSWORD, synthetic=25_000, extra_apps=2, demo_records=10) as sim:
        cfg = config(sim)
        tap = TapFlowfinity(config=cfg)  # discovery first, so the fault hits the sync
        capsys.readouterr()
        assert list(tap.streams) == ["app03", "app04", "leads", "visits"]
        sim.faults.add(Fault("status", status=403, view="app04", times=None))
        with pytest.raises(Exception, match="view 'app04'"):
            tap.sync_all()
        threads = tap.read_ahead.threads
        assert len(threads) == schema_default("max_parallel_views")
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
    messages = parse_output(capsys.readouterr().out)
    assert {m["stream"] for m in messages if m["type"] == "RECORD"} == {"app03"}
    assert bookmark([m for m in messages if m["type"] == "STATE"][-1], "app03") == max(
        int(r["lastSubmissionId"]) for r in sim.truth("app03").values()
    )


def test_discovery_samples_views_in_parallel_to_the_same_catalog(tmp_path, sim):
    """The first view answers slowly, then with a 503: the others are sampled meanwhile."""
    first = sim.view_keys()[0]  # discovery samples in the configured order
    catalogs, logs = [], []
    for parallel in (1, schema_default("max_parallel_views")):
        sim.faults.add(
            Fault("slow", view=first, delay=3.0),
            Fault("status", status=503, view=first, headers={"Retry-After": "0"}),
        )
        sim.clear_request_log()
        catalogs.append(catalog(tmp_path, config(sim, max_parallel_views=parallel)))
        logs.append([r["view"] for r in sim.requests if r.get("view")])
    assert catalogs[0] == catalogs[1]
    for log in logs:
        assert sorted(log) == sorted([*sim.view_keys(), first]), "one sample each, one retry"
    sequential, parallel = logs
    assert sequential[:2] == [first, first]
    retry = [index for index, view in enumerate(parallel) if view == first][1]
    assert retry > 1, "another view was sampled before the retry"
