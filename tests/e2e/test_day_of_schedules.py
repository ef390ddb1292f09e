"""A day of schedules, compressed: the shipped job run back to back, faults and kills mixed in.

A schedule runs `meltano run tap-flowfinity target-postgres` thousands of times; run 500 must
behave like run 1. Here the job runs back to back (a handful of times in `make test`, at least
50 in `make soak`) while the writer keeps changing the source; some runs meet Flowfinity
faults the tap retries (503 with Retry-After, connection resets, bodies cut off, slow
answers), and some are killed (SIGKILL, then the 5 minutes a schedule would wait before
Meltano starts the job again; or SIGTERM).

Proves: every run that is not killed succeeds, or fails with one line saying why; after every
run the stored bookmark is not beyond the rows PostgreSQL holds; at the end the table equals
the source; the tap's peak memory does not grow with the number of runs (nor, in the soak, a
run's time); and nothing accumulates that an operator must clean -- no temp tables or stray
tables in the target, no new files under .meltano, no run record left RUNNING -- except what
the README says how to clean: one row per run in Meltano's `runs` table (counted), and the
plugin config files Meltano leaves behind a SIGKILLed run (removed with the README's recipe,
run here as written).
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import statistics
import subprocess
import threading
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flowfinity_simulator import Simulator
from flowfinity_simulator.faults import Fault
from tests.e2e.helpers import recipe
from tests.e2e.run_checks import (
    RUN,
    SystemDatabase,
    assert_bookmark_not_ahead,
    assert_table_is_the_source,
    stop_group,
    target_error_line,
)
from tests.e2e.source_writer import VIEW, WRITER_FOR_LONG_RUNS, Writer
from tests.harness.meltano import REPO_ROOT, MeltanoEnv, ensure_installed, run_job, start_meltano

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

SYNTHETIC_RECORDS = 20_000
SEED = 20_261_129
KILL_SHARE = 0.12
FAULT_SHARE = 0.35
# Faults the tap rides out with its retries (max_retries 8): each run that draws one still
# succeeds. `times` keeps each to a few requests.
FLOWFINITY_FAULTS: dict[str, dict[str, t.Any]] = {
    "503-retry-after": {"kind": "status", "status": 503, "headers": {"Retry-After": "1"}},
    "reset": {"kind": "reset"},
    "cut-off-body": {"kind": "drop_after_bytes", "after_bytes": 5000, "framing": "chunked"},
    "slow-answer": {"kind": "slow", "delay": 1.5},
}
ONE_LINE_ERROR = ("tap-flowfinity: error:",)


class PeakMemory(threading.Thread):
    """The largest peak RSS (VmHWM) of the tap processes in a job's process group.

    VmHWM is the process's own high-water mark, so sampling it every 50 ms misses nothing but
    the process's very last moments.
    """

    def __init__(self, pgid: int) -> None:
        super().__init__(daemon=True, name="tap-peak-memory")
        self.pgid = pgid
        self.peak_kib = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for proc in Path("/proc").glob("[0-9]*"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(stat[2]) != self.pgid:
                        continue
                    if b"bin/tap-flowfinity" not in (proc / "cmdline").read_bytes():
                        continue
                    for line in (proc / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            self.halt.wait(0.05)

    def stop(self) -> int:
        self.halt.set()
        self.join(timeout=10)
        return self.peak_kib


@dataclass
class Day:
    """What happened over the runs, for the summary line and the assertions."""

    runs: int = 0
    succeeded: int = 0
    failures: list[str] = field(default_factory=list)  # the one-line reasons
    kills: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: list[float] = field(default_factory=list)  # runs that completed
    peak_kib: list[int] = field(default_factory=list)  # runs that completed

    def summary(self, records: int, killed_configs: int, run_rows: int) -> str:
        first_t, last_t = self.seconds[1], statistics.median(self.seconds[-3:])
        return (
            f"schedules: runs={self.runs} succeeded={self.succeeded} "
            f"failed={len(self.failures)} kills={sum(self.kills.values())} "
            f"({dict(self.kills)}) flowfinity_faults={sum(self.faults.values())} "
            f"({dict(self.faults)}) records={records} "
            f"tap_peak_MiB first={self.peak_kib[1] / 1024:.0f} "
            f"last={self.peak_kib[-1] / 1024:.0f} max={max(self.peak_kib[1:]) / 1024:.0f} "
            f"(full first sync {self.peak_kib[0] / 1024:.0f}) "
            f"run_s first={first_t:.1f} last={self.seconds[-1]:.1f} "
            f"median_last3={last_t:.1f} (full first sync {self.seconds[0]:.1f}) "
            f"killed_run_configs={killed_configs} run_records={run_rows}"
        )


def one_line_reason(stderr: str) -> str | None:
    """The line a failed run gives for itself: the tap's error line, else the target's."""
    for line in reversed(stderr.splitlines()):
        for marker in ONE_LINE_ERROR:
            if marker in line:
                return line[line.index(marker) :]
    return target_error_line(stderr)


def stray_tables(postgres: t.Any, dbname: str) -> list[str]:
    """Temp tables, or tables other than the view's, left in the target database."""
    return [
        f"{schema}.{name}"
        for schema, name in postgres.query(
            "select n.nspname, c.relname from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where c.relkind = 'r' and (c.relpersistence = 't' "
            "or n.nspname = 'flowfinity' and c.relname <> 'leads')",
            dbname,
        )
    ]


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def day_of_schedules(
    runs: int, postgres: t.Any, dbname: str, home: Path, kill_runs: frozenset[int] = frozenset()
) -> tuple[Day, str, list[str]]:
    """Run the job `runs` times; what happened, a summary line, and what was left behind."""
    ensure_installed()
    rng = random.Random(SEED + runs)
    day = Day()
    with Simulator(synthetic=SYNTHETIC_RECORDS, demo_records=5, seed=SEED) as sim:
        env = MeltanoEnv(
            pg=postgres,
            dbname=dbname,
            sim_port=sim.port,
            views=[{"name": VIEW, "url": sim.view_url(VIEW)}],
            home=home,
        )
        system_db = SystemDatabase.of_home(home)
        sys_dir = Path(env.as_env()["MELTANO_SYS_DIR_ROOT"])
        after_first: set[str] = set()
        writer = Writer(sim, SEED + 1, SYNTHETIC_RECORDS, **WRITER_FOR_LONG_RUNS)
        writer.start()
        try:
            for number in range(runs):
                day.runs += 1
                kill = number in kill_runs or (number >= 2 and rng.random() < KILL_SHARE)
                if number > 0 and not kill and rng.random() < FAULT_SHARE:
                    name = rng.choice(sorted(FLOWFINITY_FAULTS))
                    sim.faults.add(Fault.from_json({**FLOWFINITY_FAULTS[name], "times": 2}))
                    day.faults[name] += 1
                one_run(env, system_db, day, kill, rng)
                if number == 1:  # the first run with a bookmark to read (never killed)
                    after_first = files_under(sys_dir)
                sim.faults.clear()
                assert_bookmark_not_ahead(postgres, dbname, sim, writer, system_db)
        finally:
            writer.stop()
        run_job(env)
        assert_table_is_the_source(postgres, dbname, sim, system_db)
        records = len(sim.truth(VIEW))
    # Meltano keeps a fixed set of files per plugin in .meltano/run (catalog cache, last
    # state, logging config), rewritten each run. The plugin configs it writes there for each
    # run (`<tap|target>.<uuid>.config.json`, passwords included) it deletes when the run ends,
    # but not after a SIGKILL: those the README's recipe removes, run here as written.
    new_files = sorted(files_under(sys_dir) - after_first)
    killed_configs = [name for name in new_files if name.endswith(".config.json")]
    left = [f"table {name}" for name in stray_tables(postgres, dbname)]
    left += [f"file {name}" for name in new_files if name not in killed_configs]
    states = system_db.run_states()
    left += [f"{states['RUNNING']} run record(s) left RUNNING"] if "RUNNING" in states else []
    assert len(killed_configs) <= 2 * day.kills["SIGKILL"], killed_configs
    remove_killed_run_configs(sys_dir)
    still = sorted(files_under(sys_dir) - after_first)
    left += [f"file {name}, after the README's recipe" for name in still if name in killed_configs]
    summary = day.summary(records, len(killed_configs), sum(states.values()))
    return day, summary, left


def remove_killed_run_configs(sys_dir: Path) -> None:
    """The README's recipe, once the files are as old as it wants (as a day would make them)."""
    old = time.time() - 2 * 86400
    for config in (sys_dir / "run").rglob("*.config.json"):
        os.utime(config, (old, old))
    env = {**os.environ, "MELTANO_SYS_DIR_ROOT": str(sys_dir)}
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe("remove-killed-run-configs")],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=60,
    )


def one_run(
    env: MeltanoEnv, system_db: SystemDatabase, day: Day, kill: bool, rng: random.Random
) -> None:
    proc = start_meltano(RUN, env)
    memory = PeakMemory(proc.pid)
    memory.start()
    started = time.monotonic()
    stop_after = rng.uniform(1.0, 6.0) if kill else 600.0
    try:
        _, stderr = proc.communicate(timeout=stop_after)
    except subprocess.TimeoutExpired:
        if not kill:
            stop_group(proc, signal.SIGKILL)
            memory.stop()
            pytest.fail("a scheduled run did not end in 10 minutes")
        sig = signal.SIGKILL if rng.random() < 0.7 else signal.SIGTERM
        stop_group(proc, sig)
        memory.stop()
        day.kills[sig.name] += 1
        system_db.let_dead_runs_go_stale()  # the next scheduled run comes 5 minutes later
        return
    peak = memory.stop()
    if proc.returncode == 0:
        day.succeeded += 1
        day.seconds.append(time.monotonic() - started)
        day.peak_kib.append(peak)
        return
    reason = one_line_reason(stderr)
    assert reason, f"run {day.runs} failed without a one-line reason:\n{stderr[-3000:]}"
    day.failures.append(reason)
    if kill:
        return  # it ended before the kill came
    pytest.fail(f"run {day.runs} failed although every fault was retriable: {reason}")


def assert_no_growth(day: Day, times_too: bool) -> None:
    """Later runs use no more memory (and, in the soak, time) than the early ones."""
    incremental = day.peak_kib[1:]  # the first run is the full first sync
    assert len(incremental) >= 2, day
    early, late = incremental[: max(1, len(incremental) // 3)], incremental[-3:]
    assert statistics.median(late) <= 1.25 * statistics.median(early) + 10 * 1024, day.peak_kib
    if times_too:
        early_t = statistics.median(day.seconds[1 : 1 + max(1, len(day.seconds) // 3)])
        assert statistics.median(day.seconds[-5:]) <= 3 * early_t, day.seconds


@pytest.mark.slow
def test_a_few_scheduled_runs(postgres, pg_database, tmp_path, capsys):
    day, summary, left = day_of_schedules(
        4, postgres, pg_database, tmp_path / "meltano", kill_runs=frozenset({2})
    )
    with capsys.disabled():
        print("\n" + summary)
    assert not left, left
    assert day.succeeded >= 3
    assert_no_growth(day, times_too=False)


@pytest.mark.soak
@pytest.mark.timeout(1800)  # 60 runs: ~9-12 minutes on 2 CPUs
def test_a_day_of_schedules(postgres, pg_database, tmp_path, capsys):
    runs = 60
    day, summary, left = day_of_schedules(runs, postgres, pg_database, tmp_path / "meltano")
    with capsys.disabled():
        print("\n" + summary)
    assert not left, left
    assert day.runs >= 50
    assert sum(day.kills.values()) >= 3 and sum(day.faults.values()) >= 10, summary
    assert_no_growth(day, times_too=True)
