"""Transient failures lose and duplicate nothing: every record version is emitted exactly once.

The tap runs in-process (`TapFlowfinity(...).sync_all()`, stdout captured) against the
simulator over real HTTP; each fault is scripted on the sync's own requests (discovery is
done first). Retry waits are recorded instead of slept, so the tests are fast and can check
the wait the tap chose (Retry-After honoured, exponential backoff otherwise).
Checks on the Singer output: each version once, none missing, no STATE ahead of the records
written before it; and, from the simulator's request log, that a retry after a cut asks from
the last record emitted (no gap, no re-read).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from flowfinity_simulator import Fault, Simulator
from tap_flowfinity.errors import RetriesExhausted
from tap_flowfinity.tap import TapFlowfinity
from tests.e2e.singer_checks import (
    STREAM,
    assert_exactly_once,
    assert_never_ahead,
    emitted,
    parse_output,
    record_sleeps,
    run_cli,
    states,
    versions,
    write_json,
)
from tests.harness.meltano import TAP

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

PASSWORD = "faults-password"


def config(sim, **extra):
    return {
        "username": "integration",
        "password": PASSWORD,
        "views": [{"name": STREAM, "url": sim.view_url("leads")}],
        "state_message_frequency": 3,
        "max_retries": 3,
        "max_retry_seconds": 60,
        **extra,
    }


@pytest.fixture
def stack():
    with contextlib.ExitStack() as opened:
        yield opened


@pytest.fixture
def sim():
    with Simulator(password=PASSWORD, demo_records=20) as server:
        yield server


def sync_with_faults(capsys, sim, cfg, *faults, state=None):
    """Discover, then script `faults` for the sync's requests; return (messages, error)."""
    tap = TapFlowfinity(config=cfg, state=state)
    capsys.readouterr()
    sim.clear_request_log()
    sim.faults.add(*faults)
    error = None
    try:
        tap.sync_all()
    except Exception as exc:  # judged by the caller
        error = exc
    return parse_output(capsys.readouterr().out), error


def cursors(sim):
    return sim.cursor_requests("leads")


@pytest.mark.parametrize(
    "framing",
    [
        "length",  # Content-Length of the whole body declared: a short read
        "chunked",  # no terminating chunk
        "close",  # no length at all: EOF looks like a normal end, the JSON is cut
    ],
)
def test_body_cut_mid_array_resumes_from_the_last_record_emitted(
    capsys, monkeypatch, stack, framing
):
    """The cut comes after the tap's first 64 KiB read, so some records were parsed before it."""
    waits = record_sleeps(monkeypatch)
    sim = stack.enter_context(Simulator(password=PASSWORD, demo_records=300))
    fault = Fault("drop_after_bytes", after_bytes=100_000, framing=framing)
    messages, error = sync_with_faults(capsys, sim, config(sim), fault)
    assert error is None
    truth = sim.truth("leads")
    assert_exactly_once(messages, versions(truth))
    before_cut = emitted(messages)
    asked = cursors(sim)
    assert asked[0] is None and asked[1] is not None, asked
    # The retry asks from one below the last id emitted: more records sharing that id (a
    # multi-record submission) may have followed it in the cut body. No gap, and the id's
    # records already out are dropped from the answer (exactly once, above).
    kept = [sid for _, sid in before_cut if sid <= asked[1] + 1]
    assert 0 < len(kept) < len(truth), "the cut fell mid-array, after some records"
    assert asked[1] == kept[-1] - 1, "the retry asks from one below the last id emitted"
    assert len(waits) == 1


def test_reset_before_the_response_is_retried(capsys, monkeypatch, sim):
    waits = record_sleeps(monkeypatch)
    messages, error = sync_with_faults(capsys, sim, config(sim), Fault("reset"))
    assert error is None
    assert_exactly_once(messages, versions(sim.truth("leads")))
    assert cursors(sim)[:2] == [None, None], "asked again from the same (empty) cursor"
    assert len(waits) == 1 and 0 <= waits[0] <= 1.0, "first backoff: full jitter up to 1s"


def test_503_twice_then_success_backs_off_exponentially(capsys, monkeypatch, sim):
    waits = record_sleeps(monkeypatch)
    messages, error = sync_with_faults(
        capsys, sim, config(sim), Fault("status", status=503, times=2)
    )
    assert error is None
    assert_exactly_once(messages, versions(sim.truth("leads")))
    assert len(waits) == 2
    assert 0 <= waits[0] <= 1.0 and 0 <= waits[1] <= 2.0, waits


def test_429_retry_after_seconds_is_honoured(capsys, monkeypatch, sim):
    waits = record_sleeps(monkeypatch)
    fault = Fault("status", status=429, headers={"Retry-After": "7"})
    messages, error = sync_with_faults(capsys, sim, config(sim), fault)
    assert error is None
    assert_exactly_once(messages, versions(sim.truth("leads")))
    assert waits == [7.0]


def test_429_retry_after_http_date_is_honoured(capsys, monkeypatch, sim):
    waits = record_sleeps(monkeypatch)
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    fault = Fault("status", status=429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    messages, error = sync_with_faults(capsys, sim, config(sim), fault)
    assert error is None
    assert_exactly_once(messages, versions(sim.truth("leads")))
    assert len(waits) == 1 and 25 <= waits[0] <= 30, waits


def test_retry_after_beyond_the_budget_fails_instead_of_waiting(capsys, monkeypatch, sim):
    waits = record_sleeps(monkeypatch)
    fault = Fault("status", status=429, headers={"Retry-After": "3600"})
    messages, error = sync_with_faults(capsys, sim, config(sim, max_retry_seconds=60), fault)
    assert isinstance(error, RetriesExhausted)
    assert "view 'leads'" in str(error) and "HTTP 429" in str(error)
    assert waits == [] and emitted(messages) == []


def test_server_silent_beyond_request_timeout_is_retried(capsys, monkeypatch, sim):
    waits = record_sleeps(monkeypatch)
    messages, error = sync_with_faults(
        capsys, sim, config(sim, request_timeout=1), Fault("slow", delay=2.5)
    )
    assert error is None
    assert_exactly_once(messages, versions(sim.truth("leads")))
    assert len(waits) == 1


def test_retries_exhausted_fails_naming_the_view_with_nothing_emitted(capsys, monkeypatch, sim):
    waits = record_sleeps(monkeypatch)
    messages, error = sync_with_faults(
        capsys, sim, config(sim, max_retries=2), Fault("status", status=502, times=None)
    )
    assert isinstance(error, RetriesExhausted)
    assert str(error).startswith("view 'leads': gave up after 3 attempts")
    assert "HTTP 502" in str(error) and PASSWORD not in str(error)
    assert len(waits) == 2 and len(sim.view_requests("leads")) == 3
    assert emitted(messages) == [] and all(b is None for b in states(messages))


def test_every_response_cut_still_completes_because_each_makes_progress(capsys, monkeypatch, sim):
    """The retry budget restarts whenever an attempt delivers records (max_retries=1 here)."""
    record_sleeps(monkeypatch)
    fault = Fault("drop_after_bytes", after_bytes=2500, framing="close", times=None)
    messages, error = sync_with_faults(capsys, sim, config(sim, max_retries=1), fault)
    assert error is None
    assert_exactly_once(messages, versions(sim.truth("leads")))
    assert len(cursors(sim)) >= 5, "several cut responses, each resumed"


def test_a_large_streamed_history_cut_three_times_is_delivered_exactly_once(capsys, monkeypatch):
    """The streaming path (no Content-Length, body ends at EOF), cut at three places."""
    record_sleeps(monkeypatch)
    with Simulator(password=PASSWORD, synthetic=4000) as sim:
        fault = Fault("drop_after_bytes", after_bytes=700_000, times=3)
        messages, error = sync_with_faults(
            capsys, sim, config(sim, state_message_frequency=500), fault
        )
        assert error is None
        assert_exactly_once(messages, versions(sim.truth("leads")))
        asked = cursors(sim)
        assert len(asked) == 5 and asked[0] is None, asked  # 3 cut, the rest, the empty end
        assert asked[1] < asked[2] < asked[3] < asked[4]


def test_a_read_timeout_mid_body_resumes_from_the_last_record(capsys, monkeypatch):
    record_sleeps(monkeypatch)
    with Simulator(password=PASSWORD, synthetic=1500) as sim:
        fault = Fault("slow", chunk_delay=2.0, chunk_bytes=40_000)
        messages, error = sync_with_faults(capsys, sim, config(sim, request_timeout=1), fault)
        assert error is None
        assert_exactly_once(messages, versions(sim.truth("leads")))
        asked = cursors(sim)
        assert asked[0] is None and asked[1] is not None, "resumed mid-history, not from zero"


def test_a_transient_failure_during_discovery_is_retried(capsys, monkeypatch, sim):
    waits = record_sleeps(monkeypatch)
    sim.faults.add(Fault("status", status=503, headers={"Retry-After": "2"}))
    tap = TapFlowfinity(config=config(sim))
    assert "RecordID" in tap.streams[STREAM].schema["properties"]
    assert waits == [2.0]
    tap.sync_all()
    messages = parse_output(capsys.readouterr().out)
    assert_exactly_once(messages, versions(sim.truth("leads")))


def test_stdout_holds_only_singer_messages_under_faults(capsys, monkeypatch, sim):
    record_sleeps(monkeypatch)
    messages, error = sync_with_faults(
        capsys, sim, config(sim), Fault("reset"), Fault("status", status=503, times=2)
    )
    assert error is None
    assert {m["type"] for m in messages} <= {"SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION"}
    assert json.dumps(messages).count(PASSWORD) == 0


def test_a_cut_beyond_the_retries_keeps_the_records_before_it_and_a_resume_completes(tmp_path):
    """The data side of a cut body, through the CLI: what was read before the cut is out and
    bookmarked when the run fails, and a run resumed from that STATE delivers the rest."""
    with Simulator(password=PASSWORD, demo_records=300) as sim:
        cfg = config(sim, max_retries=0, state_message_frequency=10, lookback=0)
        catalog = TapFlowfinity(config=cfg).catalog_dict  # discovery before the fault
        sim.faults.add(Fault("drop_after_bytes", after_bytes=100_000, framing="chunked"))
        rc, first, stderr = run_cli(tmp_path, cfg, catalog=catalog)
        assert rc != 0 and "gave up after 1 attempts" in stderr
        truth = versions(sim.truth("leads"))
        before_cut = emitted(first)
        assert 0 < len(before_cut) < len(truth), "records parsed before the cut went out"
        assert set(before_cut) <= truth and len(set(before_cut)) == len(before_cut)
        saved = [b for b in states(first) if b is not None]
        assert saved and saved[-1] > 0, "and a bookmark covering them"
        assert_never_ahead(first, truth)

        state = {"bookmarks": {STREAM: {"replication_key": "lastSubmissionId"}}}
        state["bookmarks"][STREAM]["replication_key_value"] = saved[-1]
        rc, second, _ = run_cli(tmp_path, cfg, catalog=catalog, state=state)
        assert rc == 0
        assert_exactly_once(second, versions(sim.truth("leads"), after=saved[-1]))
        assert {v for v in before_cut if v[1] <= saved[-1]} | set(emitted(second)) == truth


def test_answers_of_varying_length_are_read_until_an_empty_one(capsys, monkeypatch, sim):
    """No page size is assumed: a shorter answer is not taken for the last one."""
    tap = TapFlowfinity(config=config(sim))  # discovery first
    capsys.readouterr()
    sim.clear_request_log()
    caps = [7, 3, 5, 1, 2]
    pending = [Fault("cap", cap=cap) for cap in caps]
    take = sim.faults.take

    def one_cap_per_request(view_key):  # each request gets the next cap, in order
        return take(view_key) + ([pending.pop(0)] if pending else [])

    monkeypatch.setattr(sim.faults, "take", one_cap_per_request)
    tap.sync_all()
    messages = parse_output(capsys.readouterr().out)
    assert_exactly_once(messages, versions(sim.truth("leads")))
    sent = [r["records_sent"] for r in sim.view_requests("leads")]
    assert sent[: len(caps)] == caps and sent[-1] == 0, sent


def test_a_failing_stream_writes_every_record_read_before_the_failure_first(tmp_path, sim):
    """Through the CLI, stdout and stderr on one pipe: the records buffered when a record
    fails the run reach stdout before the error line (not only when the process exits)."""
    cfg = config(sim, on_type_error="fail", state_message_frequency=1000)
    cfg["views"][0]["field_types"] = {"EmployeeCount": "integer"}
    bad = sim.create("leads", {"EmployeeCount": "about 20"})
    catalog = TapFlowfinity(config=cfg).catalog_dict
    argv = [TAP, "--config", write_json(tmp_path / "c.json", cfg)]
    argv += ["--catalog", write_json(tmp_path / "cat.json", catalog)]
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert done.returncode != 0
    lines = done.stdout.decode().splitlines()
    error = next(i for i, line in enumerate(lines) if line.startswith("tap-flowfinity: error:"))
    assert bad["RecordID"] in lines[error]
    messages = parse_output("\n".join(line for line in lines if line.startswith('{"type":')))
    truth = sim.truth("leads")
    assert_exactly_once(
        messages, versions(truth) - {(bad["RecordID"], int(bad["lastSubmissionId"]))}
    )
    last_record = max(i for i, line in enumerate(lines) if line.startswith('{"type":"RECORD"'))
    assert last_record < error, "the records went out before the failure was reported"
