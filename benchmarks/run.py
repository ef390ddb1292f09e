"""Benchmark: tap-flowfinity against the practical limit and the generic peer, and the main job
against a raw COPY. One command, not part of the test suite:

    make bench                       # 100k and 1M records
    .venv/bin/python benchmarks/run.py --records 100000 1000000
    .venv/bin/python benchmarks/run.py --quick     # 20k and 100k

For each N, a `flowfinity-simulator --synthetic N` subprocess serves N Lead Registration
records, and each contender reads the whole history in one first sync:

- tap-flowfinity, stdout to /dev/null (it runs its own discovery first, as users' runs do);
- raw: requests GET + ijson + msgspec writing Singer RECORD lines (benchmarks/raw_client.py),
  the reference streaming client (the practical limit); and the same client with the tap's own
  parser instead of ijson ("raw client, tap parser"), which isolates the tap's overhead;
- peer: tap-rest-api-msdk, the generic SDK REST tap, configured for the same view with basic
  auth (installed on first use into benchmarks/.venv-peer, never into the tap's venv);
- main job: `meltano run tap-flowfinity target-postgres` exactly as meltano.yml ships it
  (its own Meltano system database and .meltano run dir, a fresh target schema);
- COPY: the raw client's rows as CSV piped into `psql \\copy` into a table of the same
  columns and primary key, on the same throwaway PostgreSQL;
- loader alone: the tap's output, saved to a file first, fed to `meltano invoke
  target-postgres` as shipped: the main job's ceiling with the tap and Meltano's relay free;
- loader, BATCH: the same rows as Singer BATCH messages (JSONL files of 20k records) into
  the same target: what BATCH messages could gain at best.

Peak RSS is the child's maximum resident set size from /usr/bin/time -v (for the main job,
not measured: it is three processes). Rates are records per wall-clock second, startup
included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import chart  # noqa: E402
from tests.harness.pg_binaries import pg_binary  # noqa: E402
from tests.harness.postgres import ThrowawayPostgres  # noqa: E402

BIN = Path(sys.executable).parent  # the tap, Meltano and the simulator installed next to it
PEER_VENV = REPO / "benchmarks" / ".venv-peer"
PEER_PACKAGE = "tap-rest-api-msdk"
USER, PASSWORD = "integration", "bench-password"
VIEW_PATH = "/Flowfinity/api/rest/v1/LeadRegistration/views/LeadsSync"
# The columns of the synthetic view, with the types target-postgres gives them.
COLUMNS = {
    "BusinessPhone": "text",
    "CallbackRequested": "jsonb",
    "Company": "text",
    "EmailAddress": "text",
    "EmployeeCount": "text",
    "FirstContact": "text",
    "FirstName": "text",
    "Industry": "jsonb",
    "LastName": "text",
    "MobilePhone": "text",
    "Probability": "jsonb",
    "Rating": "jsonb",
    "Summary": "text",
    "TotalValue": "text",
    "RecordID": "text primary key",
    "CreatedBy": "text",
    "CreatedOn": "timestamp",
    "State": "text",
    "lastSubmissionId": "bigint",
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- processes --------------------------------------------------------------------------


class Simulator:
    """`flowfinity-simulator --synthetic N` as a subprocess on a free port."""

    def __init__(self, records: int, workdir: Path) -> None:
        ready = workdir / f"sim-{records}.json"
        env = {**os.environ, "FLOWFINITY_SIM_PASSWORD": PASSWORD}
        self.proc = subprocess.Popen(
            [
                *(str(BIN / "flowfinity-simulator"), "--port", "0", "--synthetic", str(records)),
                *("--username", USER, "--ready-file", str(ready)),
            ],
            stdout=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 30
        while not (ready.exists() and ready.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        self.base_url: str = info["base_url"]
        self.view_url: str = info["views"]["leads"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def timed(argv: list[str], stdout: object = subprocess.DEVNULL, **kwargs: object) -> dict:
    """Run argv under /usr/bin/time -v: wall seconds and peak RSS (MB) of the child."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        start = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-v", "-o", report.name, *argv],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            **kwargs,  # type: ignore[arg-type]
        )
        wall = time.perf_counter() - start
        text = Path(report.name).read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr[-2000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return {"seconds": wall, "rss_mb": int(rss.group(1)) / 1024 if rss else None}


def ensure_peer() -> Path:
    executable = PEER_VENV / "bin" / PEER_PACKAGE
    if not executable.exists():
        log(f"installing {PEER_PACKAGE} into {PEER_VENV.relative_to(REPO)} (once)")
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "-q", PEER_PACKAGE], check=True)
    return executable


# -- contenders ---------------------------------------------------------------------------


def tap_command(sim: Simulator, workdir: Path) -> list[str]:
    """tap-flowfinity with a config for the simulator's view (its own discovery included)."""
    config = workdir / "tap.json"
    views = [{"name": "leads", "url": sim.view_url}]
    config.write_text(json.dumps({"username": USER, "password": PASSWORD, "views": views}))
    return [str(BIN / "tap-flowfinity"), "--config", str(config)]


def run_tap(sim: Simulator, workdir: Path) -> dict:
    return timed(tap_command(sim, workdir))


def run_raw(sim: Simulator, parser: str = "ijson") -> dict:
    script = REPO / "benchmarks" / "raw_client.py"
    argv = [str(BIN / "python"), str(script), sim.view_url, USER, PASSWORD, "--parser", parser]
    return timed(argv)


def run_peer(sim: Simulator, workdir: Path) -> dict:
    executable = ensure_peer()
    config = workdir / "peer.json"
    config.write_text(
        json.dumps(
            {
                "api_url": sim.base_url,
                "auth_method": "basic",
                "username": USER,
                "password": PASSWORD,
                "streams": [
                    {
                        "name": "leads",
                        "path": VIEW_PATH,
                        "primary_keys": ["RecordID"],
                        "records_path": "$[*]",
                        "num_inference_records": 200,
                    }
                ],
            }
        )
    )
    return timed([str(executable), "--config", str(config)])


def meltano_env(pg: ThrowawayPostgres, sim: Simulator, home: Path, schema: str) -> dict:
    """An isolated Meltano: own system DB and run dir; the repo's installed plugins."""
    sys_dir = home / "sys"
    sys_dir.mkdir(parents=True, exist_ok=True)
    for kind in ("extractors", "loaders"):
        link = sys_dir / kind
        if not link.exists():
            link.symlink_to(REPO / ".meltano" / kind)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_", "TARGET_", "MELT"))}
    env.update(pg.target_env())
    env.update(
        {
            "MELTANO_SYS_DIR_ROOT": str(sys_dir),
            "MELTANO_DATABASE_URI": f"sqlite:///{home / 'meltano.db'}",
            "MELTANO_ENVIRONMENT": "dev",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_DISABLE_TRACKING": "true",
            "TAP_FLOWFINITY_USERNAME": USER,
            "TAP_FLOWFINITY_PASSWORD": PASSWORD,
            "TAP_FLOWFINITY_VIEWS": json.dumps([{"name": "leads", "url": sim.view_url}]),
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
            "FLOWFINITY_SIM_PORT": "0",
        }
    )
    return env


def run_meltano_loading(
    pg: ThrowawayPostgres, env: dict, args: list[str], schema: str, n: int, stdin: object = None
) -> dict:
    """Time one Meltano command that loads the view into `schema`; check every row landed."""
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "meltano"), *args],
        cwd=REPO,
        env=env,
        stdin=stdin,  # type: ignore[arg-type]
        capture_output=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = proc.stderr[-3000:].decode(errors="replace")
        raise RuntimeError(f"meltano {' '.join(args)} exited {proc.returncode}: {tail}")
    rows = int(pg.query(f"select count(*) from {schema}.leads")[0][0] or 0)
    if rows != n:
        raise RuntimeError(f"meltano {' '.join(args)} loaded {rows} rows, expected {n}")
    return {"seconds": seconds, "rss_mb": None}


def run_main_job(pg: ThrowawayPostgres, sim: Simulator, workdir: Path, n: int) -> dict:
    schema = f"bench_job_{n}"
    env = meltano_env(pg, sim, workdir / f"meltano-{n}", schema)
    return run_meltano_loading(pg, env, ["run", "tap-flowfinity", "target-postgres"], schema, n)


def tap_output(sim: Simulator, workdir: Path, n: int) -> Path:
    """The tap's Singer output for the view, saved once per N (deleted with the workdir)."""
    singer = workdir / f"tap-output-{n}.jsonl"
    if not singer.exists():
        with singer.open("wb") as out:
            subprocess.run(
                tap_command(sim, workdir), stdout=out, stderr=subprocess.DEVNULL, check=True
            )
    return singer


def run_loader_alone(pg: ThrowawayPostgres, sim: Simulator, workdir: Path, n: int) -> dict:
    """target-postgres as shipped, fed the tap's saved output: the loader's own rate."""
    schema = f"bench_loader_{n}"
    env = meltano_env(pg, sim, workdir / f"meltano-loader-{n}", schema)
    with tap_output(sim, workdir, n).open("rb") as messages:
        return run_meltano_loading(
            pg, env, ["invoke", "target-postgres"], schema, n, stdin=messages
        )


def as_batch_messages(singer: Path, directory: Path, rows_per_file: int = 20_000) -> Path:
    """The same stream as Singer BATCH messages: the SCHEMA, JSONL files of raw records (as
    many rows as the shipped batch_size_rows), then the last STATE."""
    directory.mkdir(parents=True, exist_ok=True)
    lines: list[bytes] = []
    messages = directory / "messages.jsonl"

    def batch(records: list[bytes]) -> bytes:
        path = directory / f"batch-{len(lines)}.jsonl"
        path.write_bytes(b"\n".join(records) + b"\n")
        encoding = {"format": "jsonl", "compression": "none"}
        message = {"type": "BATCH", "stream": "leads", "encoding": encoding}
        return json.dumps({**message, "manifest": [path.as_uri()]}).encode()

    schema, state, records = b"", b"", []
    with singer.open("rb") as source:
        for line in source:
            kind = json.loads(line)["type"]
            if kind == "SCHEMA" and not schema:
                schema = line.rstrip()
            elif kind == "STATE":
                state = line.rstrip()
            elif kind == "RECORD":
                records.append(json.dumps(json.loads(line)["record"]).encode())
                if len(records) == rows_per_file:
                    lines.append(batch(records))
                    records = []
    if records:
        lines.append(batch(records))
    messages.write_bytes(b"\n".join([schema, *lines, state]) + b"\n")
    return messages


def run_loader_batch(pg: ThrowawayPostgres, sim: Simulator, workdir: Path, n: int) -> dict:
    """target-postgres as shipped, fed the same rows as BATCH files: the loader without its
    per-record message handling (and without the `_sdc_*` metadata it adds per record)."""
    messages = as_batch_messages(tap_output(sim, workdir, n), workdir / f"batches-{n}")
    schema = f"bench_batch_{n}"
    env = meltano_env(pg, sim, workdir / f"meltano-batch-{n}", schema)
    with messages.open("rb") as stdin:
        return run_meltano_loading(pg, env, ["invoke", "target-postgres"], schema, n, stdin=stdin)


def run_copy(pg: ThrowawayPostgres, sim: Simulator, n: int) -> dict:
    table = f"bench_copy.leads_{n}"
    columns = ", ".join(f'"{name}" {kind}' for name, kind in COLUMNS.items())
    pg.execute(f"create schema if not exists bench_copy; drop table if exists {table}")
    pg.execute(f"create table {table} ({columns})")
    names = ",".join(COLUMNS)
    quoted = ", ".join(f'"{name}"' for name in COLUMNS)
    script = REPO / "benchmarks" / "raw_client.py"
    info = pg._require()
    client = [str(BIN / "python"), str(script), sim.view_url, USER, PASSWORD, "--csv"]
    client += ["--columns", names]
    psql = [
        pg_binary("psql"),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        info.host,
        "-p",
        str(info.port),
    ]
    psql += ["-U", info.user, "-d", info.dbname]
    psql += ["-c", f"\\copy {table} ({quoted}) from stdin with (format csv)"]
    start = time.perf_counter()
    producer = subprocess.Popen(client, stdout=subprocess.PIPE)
    consumer = subprocess.run(psql, stdin=producer.stdout, capture_output=True, text=True)
    assert producer.stdout is not None
    producer.stdout.close()
    producer.wait()
    seconds = time.perf_counter() - start
    if consumer.returncode or producer.returncode:
        raise RuntimeError(f"raw COPY failed: {consumer.stderr[-2000:]}")
    rows = int(pg.query(f"select count(*) from {table}")[0][0] or 0)
    if rows != n:
        raise RuntimeError(f"COPY loaded {rows} rows, expected {n}")
    return {"seconds": seconds, "rss_mb": None}


# -- report -------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.splitlines()
    total = mem[1].split()[1] if len(mem) > 1 else "?"
    return f"{os.cpu_count()} CPUs ({cpu}), {total} RAM, Python {platform.python_version()}"


def main() -> int:
    # A stopped benchmark still stops its PostgreSQL and simulators (the finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="20k and 100k records")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument(
        "--chart",
        type=Path,
        default=REPO / "benchmarks" / "scaling.svg",
        help="where to write the chart (README 'Scaling'); its numbers go beside it as .json",
    )
    args = parser.parse_args()
    sizes = [20_000, 100_000] if args.quick else sorted(args.records)

    results: dict[int, dict[str, dict]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="ff-bench-"))
    pg = None if args.skip_e2e else ThrowawayPostgres(dbname="bench").start()
    try:
        for n in sizes:
            sim = Simulator(n, workdir)
            row: dict[str, dict] = {}
            contenders = {
                "tap-flowfinity": lambda s, n: run_tap(s, workdir),
                "raw client": lambda s, n: run_raw(s),
                "raw client, tap parser": lambda s, n: run_raw(s, parser="tap"),
                "tap-rest-api-msdk": None if args.skip_peer else lambda s, n: run_peer(s, workdir),
                "main job": None if pg is None else lambda s, n: run_main_job(pg, s, workdir, n),
                "loader alone": None
                if pg is None
                else lambda s, n: run_loader_alone(pg, s, workdir, n),
                "loader, BATCH": None
                if pg is None
                else lambda s, n: run_loader_batch(pg, s, workdir, n),
                "raw COPY": None if pg is None else lambda s, n: run_copy(pg, s, n),
            }
            try:
                for name, run in contenders.items():
                    if run is None:
                        continue
                    log(f"{n:>9,} records: {name} ...")
                    row[name] = run(sim, n)
                    row[name]["rate"] = n / row[name]["seconds"]
                    log(f"{n:>9,} records: {name}: {row[name]['rate']:,.0f}/s")
            finally:
                sim.stop()
            results[n] = row
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    when = time.strftime("%Y-%m-%d", time.gmtime())
    caption = f"benchmarks/run.py {' '.join(sys.argv[1:])} on {when}; {machine()}"
    chart.write(results, caption, args.chart.with_suffix(".json"), args.chart)
    log(f"chart: {args.chart}")

    print(f"\nMachine: {machine()}")
    print(f"\n| {'records':>9} | {'contender':<31} | {'records/s':>10} | {'peak RSS':>9} |")
    print(f"|{'-' * 11}|{'-' * 33}|{'-' * 12}|{'-' * 11}|")
    labels = {
        "tap-flowfinity": "tap-flowfinity > /dev/null",
        "raw client": "raw client > /dev/null",
        "raw client, tap parser": "raw client, tap parser",
        "tap-rest-api-msdk": "tap-rest-api-msdk > /dev/null",
        "main job": "main job (meltano run, shipped)",
        "loader alone": "target-postgres alone (file)",
        "loader, BATCH": "target-postgres alone, BATCH",
        "raw COPY": "raw COPY into PostgreSQL",
    }
    for n, row in results.items():
        for name, r in row.items():
            rss = f"{r['rss_mb']:.0f} MB" if r["rss_mb"] is not None else "-"
            print(f"| {n:>9,} | {labels[name]:<31} | {r['rate']:>10,.0f} | {rss:>9} |")
    smallest = results[sizes[0]]

    def ratio(row: dict, a: str, b: str) -> str:
        return f"{row[a]['rate'] / row[b]['rate']:.2f}x" if a in row and b in row else "n/a"

    print()
    for n, row in results.items():
        tap_rss = row["tap-flowfinity"]["rss_mb"]
        growth = tap_rss - smallest["tap-flowfinity"]["rss_mb"]
        print(
            f"ratios at {n:,} records: tap/peer {ratio(row, 'tap-flowfinity', 'tap-rest-api-msdk')}"
            f" (target >= 6x), tap/raw {ratio(row, 'tap-flowfinity', 'raw client')} (>= 0.7x),"
            f" tap peak RSS {tap_rss:.0f} MB (< 64), RSS growth from {sizes[0]:,}"
            f" {growth:+.0f} MB, main job/COPY {ratio(row, 'main job', 'raw COPY')} (>= 0.3x);"
            f" for context: tap/raw with the tap's parser"
            f" {ratio(row, 'tap-flowfinity', 'raw client, tap parser')}, loader alone/COPY"
            f" {ratio(row, 'loader alone', 'raw COPY')} (the main job's ceiling), loader with"
            f" BATCH/COPY {ratio(row, 'loader, BATCH', 'raw COPY')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
