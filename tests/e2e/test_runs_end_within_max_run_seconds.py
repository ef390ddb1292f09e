"""`max_run_seconds` through the shipped job: a run that cannot catch up still ends on time.

A schedule starts `meltano run tap-flowfinity target-postgres` every few minutes; a run that
chases a source written faster than it can read would never end, and the next scheduled run
would find it still running. Here the simulator answers slowly and caps its answers while a
writer creates, updates and deletes records faster than the tap can read them, so without the
limit a run would never see the end of the view. Each run of the real job, with
`max_run_seconds` set, must:

- send no request after its deadline (the simulator's request log; the deadline measured from
  the tap's first log line of the sync, which comes after the tap started, so the check can
  only be more lenient than the tap's own clock, never stricter);
- log that it stopped after the answer in hand, within one answer of the deadline, and end
  (the whole `meltano run` within a bound, or it is stopped and the test fails);
- store a bookmark ahead of the one it started from (the next run continues, never repeats).

When the writer stops, one run without the limit catches up, and the table is the source:
every record once, at its last version, deletes flagged.
"""

from __future__ import annotations

import re
import subprocess
import time
import typing as t
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from flowfinity_simulator import Fault, Simulator
from tests.e2e.run_checks import SystemDatabase, assert_table_is_the_source
from tests.e2e.source_writer import VIEW, Writer
from tests.harness.meltano import MeltanoEnv, MeltanoError, ensure_installed, run_job

pytestmark = pytest.mark.e2e  # starts the simulator and PostgreSQL

SEED = 20_261_206
SYNTHETIC_RECORDS = 1000
MAX_RUN_SECONDS = 4  # the setting is an integer in meltano.yml
RUNS = 3
# The site: every answer waits ANSWER_DELAY_S and holds at most ANSWER_CAP records, so the tap
# reads at most ~ANSWER_CAP / ANSWER_DELAY_S (~30) records a second ...
ANSWER_DELAY_S = 0.3
ANSWER_CAP = 10
# ... while the writer makes up to ~100 writes a second, steadily (no bursts: the suite must
# not starve the job of CPU on a small machine). Each run checks that it wrote more.
WRITER_PAUSE_S = (0.005, 0.015)
# Clock reading jitter between the tap's check and the simulator's log of the request it let
# through, and between the tap's log line and Meltano's timestamp on it.
JITTER_S = 0.3
# One answer: its delay, the records' transfer, and the tap emitting them.
ONE_ANSWER_S = ANSWER_DELAY_S + 1.0
# A whole `meltano run`: Meltano's start, discovery, the tap's MAX_RUN_SECONDS, the target's
# last commit. A run that has not ended by then never stopped asking.
RUN_TIMEOUT_S = MAX_RUN_SECONDS + 40

LOG_LINE = re.compile(r"^(?P<at>\S+Z) \[\w+\s*\] tap-flowfinity (?P<message>.*)$")
SYNC_BEGINS = f"Beginning sync of '{VIEW}'"
STOPPED = f"View '{VIEW}': max_run_seconds ({MAX_RUN_SECONDS}) has passed"


@dataclass
class TimedRun:
    """One `meltano run` as the test saw it: the tap's log lines (with Meltano's timestamps,
    as epoch seconds) and the simulator's requests to the view."""

    wall_s: float
    log: list[tuple[float, str]]
    requests: list[dict[str, t.Any]]
    ids_written: int  # submission ids the writer took while the job ran

    def first(self, prefix: str) -> float:
        """When the tap logged the first line that starts with `prefix`."""
        found = [at for at, message in self.log if message.startswith(prefix)]
        assert found, f"the tap never logged {prefix!r}"
        return found[0]


def tap_log(stderr: str) -> list[tuple[float, str]]:
    """The tap's lines of a `meltano run` log: (Meltano's timestamp, the message)."""
    lines = []
    for line in stderr.splitlines():
        match = LOG_LINE.match(line)
        if match:
            at = datetime.fromisoformat(match["at"]).timestamp()
            lines.append((at, match["message"]))
    return lines


def timed_run(env: MeltanoEnv, sim: Simulator, number: int) -> TimedRun:
    """Run the job once; fail with one line when it does not end within RUN_TIMEOUT_S."""
    sim.clear_request_log()
    ids_before = sim.counter
    started = time.monotonic()
    done: subprocess.CompletedProcess[str] | None
    try:
        done = run_job(env, timeout=RUN_TIMEOUT_S)
    except MeltanoError as error:
        if error.returncode != -9:  # -9: run_job's timeout killed the job
            raise
        done = None  # failed below, outside the handler: its log would bury the one line
    if done is None:
        requests = sim.view_requests(VIEW)
        recent = [r for r in requests if r["time"] > time.time() - 5]
        pytest.fail(
            f"run {number} with max_run_seconds {MAX_RUN_SECONDS} did not end within "
            f"{RUN_TIMEOUT_S}s: it kept asking ({len(requests)} requests, "
            f"{len(recent)} in its last 5 s)"
        )
    return TimedRun(
        time.monotonic() - started,
        tap_log(done.stderr),
        sim.view_requests(VIEW),
        sim.counter - ids_before,
    )


def newest_id(sim: Simulator) -> int:
    return max(int(record["lastSubmissionId"]) for record in sim.truth(VIEW).values())


def assert_ended_on_time(run: TimedRun, number: int) -> str:
    """No request after the deadline; the tap stopped within one answer of it; the run ended.

    Returns how the run went against its deadline, for the summary line.
    """
    # The tap's clock starts before it logs that the sync begins: this deadline is no earlier
    # than the tap's own.
    deadline = run.first(SYNC_BEGINS) + MAX_RUN_SECONDS
    late = [
        f"{r['time'] - deadline:+.2f}s from {r['cursor']}"
        for r in run.requests
        if r["time"] > deadline + JITTER_S
    ]
    assert not late, f"run {number}: requests started after the deadline: {late}"
    stopped = run.first(STOPPED)
    assert stopped <= deadline + ONE_ANSWER_S + JITTER_S, (
        f"run {number}: the tap stopped {stopped - deadline:.2f}s after its deadline "
        f"(one answer is {ONE_ANSWER_S}s)"
    )
    assert run.wall_s < RUN_TIMEOUT_S, run.wall_s
    read = sum(r["records_sent"] for r in run.requests)
    assert run.ids_written > read, f"run {number}: the writer did not outpace the tap"
    last_request = max(r["time"] for r in run.requests) - deadline
    return (
        f"{run.wall_s:.1f}s wall, {len(run.requests)} requests, last {last_request:+.2f}s, "
        f"stopped {stopped - deadline:+.2f}s, {read} records read, {run.ids_written} written"
    )


def test_runs_against_a_source_written_faster_than_read_end_within_max_run_seconds(
    postgres: t.Any, pg_database: str, tmp_path: Path
) -> None:
    ensure_installed()
    home = tmp_path / "meltano"
    with Simulator(synthetic=SYNTHETIC_RECORDS, demo_records=5, seed=SEED) as sim:
        env = MeltanoEnv(
            pg=postgres,
            dbname=pg_database,
            sim_port=sim.port,
            views=[{"name": VIEW, "url": sim.view_url(VIEW)}],
            home=home,
            extra={"TAP_FLOWFINITY_MAX_RUN_SECONDS": str(MAX_RUN_SECONDS)},
        )
        system_db = SystemDatabase.of_home(home)
        slow_site = [
            Fault("slow", view=VIEW, delay=ANSWER_DELAY_S, times=None),
            Fault("cap", view=VIEW, cap=ANSWER_CAP, times=None),
        ]
        sim.faults.add(*slow_site)
        writer = Writer(
            sim,
            SEED + 1,
            SYNTHETIC_RECORDS,
            pause_s=WRITER_PAUSE_S,
            slow_submissions=False,
            bursts=False,
        )
        writer.start()
        bookmarks: list[int | None] = [None]
        timings = []
        try:
            for number in range(1, RUNS + 1):
                run = timed_run(env, sim, number)
                timings.append(assert_ended_on_time(run, number))
                bookmark = system_db.bookmark()
                assert bookmark is not None, f"run {number} stored no bookmark"
                previous = bookmarks[-1]
                assert previous is None or bookmark > previous, (
                    f"run {number} did not advance the bookmark ({previous} -> {bookmark})"
                )
                bookmarks.append(bookmark)
                # Still behind: the run ended because of the limit, not because it caught up.
                assert newest_id(sim) > bookmark, f"run {number} caught up with the writer"
        finally:
            writer.stop()
        sim.faults.clear()
        del env.extra["TAP_FLOWFINITY_MAX_RUN_SECONDS"]
        run_job(env, timeout=300)
        assert_table_is_the_source(postgres, pg_database, sim, system_db)
        print(
            f"\nruns (against the deadline): {timings}; bookmarks {bookmarks[1:]}; "
            f"writer {dict(writer.ops)}"
        )
