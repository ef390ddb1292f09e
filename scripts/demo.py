"""`make demo`: the main job end to end, three times, against a local simulator and PostgreSQL.

1. start a throwaway PostgreSQL and the Flowfinity simulator (`flowfinity-simulator`);
2. `meltano run tap-flowfinity target-postgres` (full first sync);
3. change records in the simulator: create one, update one, move one to "Deleted";
4. run the same command again (incremental, from the bookmark Meltano stored);
5. print the table and what the second run read;
6. purge one record (what Flowfinity's Delete operation does: it never shows up again, so no
   incremental run can see it) and run once more with reconcile_every_hours 0: the run reads
   the whole view and ends with ACTIVATE_VERSION, and exactly that row gets `_sdc_deleted_at`;
7. stop both servers, whatever happened (also on Ctrl-C).

Usage: python scripts/demo.py [--lookback N] [--demo-records N] [--keep-output]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.harness.meltano import (  # noqa: E402
    DEV_PASSWORD,
    DEV_USERNAME,
    MeltanoEnv,
    MeltanoError,
    ensure_installed,
    get_bookmarks,
    run_job,
)
from tests.harness.pg_binaries import PostgresBinariesError, pg_binary, source  # noqa: E402
from tests.harness.postgres import (  # noqa: E402
    PostgresError,
    ThrowawayPostgres,
    copied_installation_note,
)

SCHEMA = "flowfinity"  # meltano.yml: default_target_schema
DEMO_TABLE = "leads"  # meltano.yml dev view names: leads, visits
DEMO_APP = "leads"  # the simulator view key of the Lead Registration app
READY_TIMEOUT_S = 60


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 74 - len(text)), flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SimulatorProcess:
    """`flowfinity-simulator` as a subprocess (what a user would run), plus its control API."""

    def __init__(self, workdir: Path, demo_records: int, seed: int) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.ready_file = workdir / "simulator.ready"
        self.log_file = workdir / "simulator.log"
        self.demo_records = demo_records
        self.seed = seed
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = shutil.which("flowfinity-simulator", path=str(Path(sys.executable).parent))
        cmd = [exe] if exe else [sys.executable, "-m", "flowfinity_simulator.cli"]
        cmd += [
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--username", DEV_USERNAME),
            *("--demo-records", str(self.demo_records), "--seed", str(self.seed)),
            *("--ready-file", str(self.ready_file)),
        ]
        env = {**os.environ, "FLOWFINITY_SIM_PASSWORD": DEV_PASSWORD}  # not on the cmd line
        with self.log_file.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"simulator not ready after {READY_TIMEOUT_S}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)
        # The ready file may say where the server ended up (e.g. JSON with a port).
        try:
            info = json.loads(self.ready_file.read_text() or "{}")
            if isinstance(info, dict) and info.get("port"):
                self.port = int(info["port"])
        except ValueError:
            pass
        print(f"simulator ready at {self.base_url} (log: {self.log_file})")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the simulator's HTTP control API (same Basic credentials as the views)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        token = base64.b64encode(f"{DEV_USERNAME}:{DEV_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise RuntimeError(f"{method} {path} -> HTTP {exc.code}: {detail}") from None
        return json.loads(text) if text.strip() else None


# ---------------------------------------------------------------------------------------------
# SIMULATOR CONTROL CALLS -- the only place that knows the simulator's control endpoints.
# (flowfinity_simulator/service.py documents the control API)
# ---------------------------------------------------------------------------------------------
def change_records_in_simulator(sim: SimulatorProcess, record_ids: list[str]) -> dict[str, str]:
    """Create one lead, update one, delete one (a transition to "Deleted"); say which."""
    if len(record_ids) < 2:
        raise RuntimeError(f"need two existing {DEMO_TABLE} records, found {record_ids}")
    to_update, to_delete = record_ids[0], record_ids[1]
    # Between two scheduled runs the site's other apps take submission ids too: the
    # system-wide counter moves past the lookback overlap, as it does on a live site.
    sim.control("POST", "/_sim/advance", {"by": 5000})
    created = sim.control(
        "POST",
        f"/_sim/views/{DEMO_APP}/records",
        {"Company": "Demo Created Inc", "FirstName": "Dee", "LastName": "Mo"},
    )
    sim.control(
        "POST", f"/_sim/views/{DEMO_APP}/records/{to_update}", {"Company": "Demo Updated Ltd"}
    )
    sim.control("POST", f"/_sim/views/{DEMO_APP}/records/{to_delete}/delete", {})
    created_id = created.get("RecordID", "?") if isinstance(created, dict) else "?"
    return {"created": str(created_id), "updated": to_update, "deleted": to_delete}


def purge_in_simulator(sim: SimulatorProcess, record_id: str) -> None:
    """Remove a lead physically, as Flowfinity's Delete operation does: no new submission id,
    never in the view again, so a read from the cursor cannot see that it is gone."""
    sim.control("POST", f"/_sim/views/{DEMO_APP}/records/{record_id}/purge", {})


def gone_from_view(sim: SimulatorProcess) -> list[str]:
    """The RecordIDs the simulator's view no longer shows (purged, or out of its filter)."""
    return [str(record_id) for record_id in sim.control("GET", f"/_sim/gone/{DEMO_APP}")]


# ---------------------------------------------------------------------------------------------


def record_counts(run_stderr: str, plugin: str = "tap-flowfinity") -> dict[str, int]:
    """Records per stream that `plugin` counted, from the SDK's `record_count` METRIC lines.

    Meltano relays both plugins' logs as `<plugin> METRIC: {...}`: the tap's lines count
    records read, target-postgres's count records written.
    """
    counts: dict[str, int] = {}
    pattern = re.compile(rf"\b{re.escape(plugin)} METRIC: (\{{.*\}})")
    for line in run_stderr.splitlines():
        match = pattern.search(line)
        if not match:
            continue
        try:
            point = json.loads(match.group(1))
        except ValueError:
            continue
        if point.get("metric") == "record_count":
            stream = str(point.get("tags", {}).get("stream", "?"))
            counts[stream] = counts.get(stream, 0) + int(point.get("value", 0))
    return counts


# The log lines that say what a run did besides reading from the bookmark: the tap's about
# reconciling and late submissions, target-postgres's on applying an ACTIVATE_VERSION.
RUN_NOTES = re.compile(
    r"\b(tap-flowfinity)\s+((?:View|view) '[^']+'.*(?:reconcil|late).*)$"
    r"|\b(target-postgres)\s+(An activate version message.*)$"
)


def run_notes(run_stderr: str) -> list[str]:
    """Those lines as `<plugin>: <message>`, without Meltano's timestamp and level."""
    notes = []
    for match in map(RUN_NOTES.search, run_stderr.splitlines()):
        if match:
            plugin, message = match.group(1, 2) if match.group(1) else match.group(3, 4)
            notes.append(f"{plugin}: {message.rstrip()}")
    return notes


def compact_state(bookmarks: dict[str, Any]) -> str:
    """Each stream's stored state on one line; the remembered ids as a count, not a list."""
    parts = []
    for stream, entry in sorted(bookmarks.items()):
        shown = {k: v for k, v in entry.items() if k not in ("replication_key", "recent_ids")}
        recent = entry.get("recent_ids")
        if isinstance(recent, dict):
            shown["recent_ids"] = (
                f"{len(recent.get('ids', []))} ids in ({recent.get('from')}, {recent.get('to')}]"
            )
        parts.append(f"{stream}: {json.dumps(shown)}")
    return "; ".join(parts)


def flagged_rows(pg: ThrowawayPostgres, dbname: str) -> list[tuple[str, str]]:
    """(RecordID, State) of every row the target has flagged with `_sdc_deleted_at`."""
    return [
        (str(record_id), str(state))
        for record_id, state in pg.query(
            f'SELECT "RecordID", "State" FROM {SCHEMA}.{DEMO_TABLE} '
            'WHERE _sdc_deleted_at IS NOT NULL ORDER BY "RecordID"',
            dbname=dbname,
        )
    ]


def print_table(pg: ThrowawayPostgres, dbname: str, table: str) -> None:
    columns = [
        r[0]
        for r in pg.query(
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_schema = '{SCHEMA}' AND table_name = '{table}' ORDER BY ordinal_position",
            dbname=dbname,
        )
        if r[0]
    ]
    if not columns:
        print(f"(no table {SCHEMA}.{table})")
        return
    wanted = ["RecordID", "State", "lastSubmissionId", "Company", "_sdc_deleted_at"]
    shown = [c for c in wanted if c in columns] or columns[:6]
    select = ", ".join(f'"{c}"' for c in shown)
    order = '"lastSubmissionId"' if "lastSubmissionId" in columns else "1"
    subprocess.run(
        [
            *(
                pg_binary("psql"),
                "-X",
                "-h",
                pg.host,
                "-p",
                str(pg.port),
                "-U",
                pg.user,
                "-d",
                dbname,
            ),
            *("-c", f"SELECT {select} FROM {SCHEMA}.{table} ORDER BY {order}"),
        ],
        check=True,
    )


def run_once(label: str, env: MeltanoEnv, command_prefix: str = "") -> dict[str, int]:
    banner(f"{label}: {command_prefix}meltano run tap-flowfinity target-postgres")
    started = time.monotonic()
    try:
        result = run_job(env)
    except MeltanoError as exc:
        print(exc.stderr[-6000:], file=sys.stderr)
        raise
    counts = record_counts(result.stderr)
    written = record_counts(result.stderr, "target-postgres")
    print(f"done in {time.monotonic() - started:.1f}s")
    for note in run_notes(result.stderr):
        print(note)
    print(f"records read per stream: {counts}; written: {written}")
    print(f"state stored by Meltano: {compact_state(get_bookmarks(env=env))}")
    return counts


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the main job twice, end to end.")
    parser.add_argument("--lookback", type=int, help="tap `lookback` setting for this demo")
    parser.add_argument("--demo-records", type=int, default=25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-output", action="store_true", help="keep the temp dir")
    args = parser.parse_args()

    # SIGTERM (e.g. from CI or `timeout`) unwinds like Ctrl-C, through the finally below.
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="ff-demo-"))
    pg = ThrowawayPostgres(dbname="flowfinity_demo")
    sim = SimulatorProcess(workdir, args.demo_records, args.seed)
    try:
        banner("starting PostgreSQL and the Flowfinity simulator")
        pg.start()
        if pg.copied_installation:
            print(copied_installation_note(pg))
        print(f"PostgreSQL ({source()} binaries) ready: {pg.dsn()}")
        sim.start()
        ensure_installed()
        extra = {"TAP_FLOWFINITY_LOOKBACK": str(args.lookback)} if args.lookback is not None else {}
        env = MeltanoEnv(
            pg=pg, dbname="flowfinity_demo", sim_port=sim.port, home=workdir, extra=extra
        )

        run_once("run 1 (first sync)", env)
        ids = [
            str(r[0])
            for r in pg.query(
                f'SELECT "RecordID" FROM {SCHEMA}.{DEMO_TABLE} '
                'WHERE _sdc_deleted_at IS NULL ORDER BY "RecordID" LIMIT 2',
                dbname="flowfinity_demo",
            )
        ]

        banner("changing records in the simulator")
        changed = change_records_in_simulator(sim, ids)
        print(f"changed: {changed}")

        sim.control("DELETE", "/_sim/requests")
        counts = run_once("run 2 (incremental, from the stored bookmark)", env)
        asked = [r for r in sim.control("GET", "/_sim/requests") if r.get("view") == DEMO_APP]

        banner(f"table {SCHEMA}.{DEMO_TABLE} after run 2")
        print_table(pg, "flowfinity_demo", DEMO_TABLE)
        banner("summary")
        print(f"run 2 read {sum(counts.values())} records ({counts}); the changes were {changed}")
        # Meltano runs discovery first: one sample request without a cursor.
        cursors = [r["cursor"] for r in asked if r["cursor"] is not None]
        print(
            f"run 2 asked the {DEMO_APP} view from PreviousLastSubmissionId={cursors[0]} (the "
            f"stored bookmark less the lookback overlap), then from {cursors[1:]} (the last id "
            f"received, until nothing new came back): "
            f"{counts.get(DEMO_TABLE, 0)} records = {len(changed)} changed + "
            f"{counts.get(DEMO_TABLE, 0) - len(changed)} re-read from the overlap (upserted as is)"
        )
        print("the deleted record is kept with _sdc_deleted_at set (soft delete)")

        banner("purging a record in the simulator (Flowfinity's Delete operation)")
        flagged_before = flagged_rows(pg, "flowfinity_demo")
        live = [
            str(r[0])
            for r in pg.query(
                f'SELECT "RecordID" FROM {SCHEMA}.{DEMO_TABLE} '
                'WHERE _sdc_deleted_at IS NULL ORDER BY "RecordID"',
                dbname="flowfinity_demo",
            )
            if str(r[0]) not in changed.values()
        ]
        purged = live[0]
        purge_in_simulator(sim, purged)
        print(f"purged {purged}: the view no longer shows {gone_from_view(sim)}")
        reconcile = env.reconciling()
        run_once(
            "run 3 (reconciling: the whole view, then ACTIVATE_VERSION)",
            reconcile,
            "TAP_FLOWFINITY_RECONCILE_EVERY_HOURS=0 ",
        )
        flagged_after = flagged_rows(pg, "flowfinity_demo")
        newly_flagged = sorted(set(flagged_after) - set(flagged_before))
        banner(f"rows of {SCHEMA}.{DEMO_TABLE} with _sdc_deleted_at set, after run 3")
        for record_id, state in flagged_after:
            why = (
                "purged: flagged by run 3's ACTIVATE_VERSION"
                if record_id == purged
                else f"State {state}: a soft delete, flagged since it was read so"
            )
            print(f"  {record_id}  ({why})")
        if [record_id for record_id, _ in newly_flagged] != [purged]:
            raise RuntimeError(f"expected only {purged} newly flagged, found {newly_flagged}")
        print(
            f"exactly the purged record {purged} is newly flagged; its row keeps its last "
            f"values (State={dict(flagged_after)[purged]})"
        )
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping servers", file=sys.stderr)
        return 130
    except (PostgresError, PostgresBinariesError) as exc:
        # the harness's messages say what to change; a traceback would bury that line
        print(f"make demo: {exc}", file=sys.stderr)
        return 1
    finally:
        sim.stop()
        pg.stop()
        if args.keep_output:
            print(f"output kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
