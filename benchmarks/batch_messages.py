"""Benchmark: does the Singer SDK's BATCH mode make the main job faster on a first sync?

One command, not part of the test suite (README "Scaling", "BATCH messages"):

    .venv/bin/python benchmarks/batch_messages.py --records 200000
    .venv/bin/python benchmarks/batch_messages.py --records 200000 1000000 --repeat 1

For each N, a `flowfinity-simulator --synthetic N` subprocess serves N Lead Registration
records and `meltano run tap-flowfinity target-postgres` reads the whole history into an
empty schema of one throwaway PostgreSQL, twice per repeat, the order alternating:

- RECORD: the job as meltano.yml ships it (RECORD messages, target-postgres with COPY and
  20k-row batches);
- BATCH: the same job with the tap's `batch_config` set (the SDK's JSONL encoder: gzip files
  of `--batch-size` records in a fresh directory, one BATCH and one STATE message per file),
  which target-postgres 0.8.1 loads file by file.

Meltano reads settings only for declared names, and meltano.yml does not declare
`batch_config`: both runs use a copy of the project whose meltano.yml declares it (unset for
RECORD, so that run is the shipped job), with the repository's installed plugins.

After each run the script checks what a first sync must deliver, and prints what BATCH mode
leaves behind: rows in the table (must be N), the bookmark Meltano stored (must be the
largest lastSubmissionId), rows whose `_sdc_batched_at` is empty, and the batch files left in
the storage directory with their permissions. Rates are records per wall-clock second,
Meltano's start-up included; the machine's other load is not controlled, hence the
alternation and the per-repeat ratios; CPU seconds (Meltano, tap and target together) depend
less on that load.

`--probe` checks guarantees of BATCH mode instead of timing it (N records, default 50k):

- selection and stream maps: with a property deselected in the catalog and another hashed by
  a stream map, the first record as RECORD message and as line of a batch file;
- re-read: the BATCH job run a second time with `--full-refresh` over the same records must
  leave N rows (target-postgres upserting by RecordID), not 2N;
- SIGTERM: the tap alone, in BATCH mode with one batch file for the whole history (the last
  file of a run is the case), is sent SIGTERM right after it logged that the view is read;
  every bookmark it wrote must be covered by the records of the BATCH messages before it.
  The SDK's SIGTERM handler writes the tap's state and exits 0, so `meltano run` would store
  such a bookmark as a successful run's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.run import BIN, PASSWORD, USER, Simulator, machine, meltano_env  # noqa: E402
from tests.harness.postgres import ThrowawayPostgres  # noqa: E402

STATE_ID = "dev:tap-flowfinity-to-target-postgres"


def log(message: str) -> None:
    print(f"[batch-bench] {message}", file=sys.stderr, flush=True)


def project_with_batch_setting(workdir: Path) -> Path:
    """A copy of the Meltano project whose tap declares `batch_config` (kind object)."""
    project = workdir / "project"
    project.mkdir()
    spec = yaml.safe_load((REPO / "meltano.yml").read_text())
    tap = next(p for p in spec["plugins"]["extractors"] if p["name"] == "tap-flowfinity")
    tap["settings"].append({"name": "batch_config", "kind": "object"})
    (project / "meltano.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copytree(REPO / "plugins", project / "plugins")
    return project


def batch_config(root: Path, batch_size: int) -> dict:
    # The SDK's JSONL encoder always gzips, whatever `compression` says; saying "gzip" makes
    # target-postgres decompress.
    return {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": root.as_uri()},
        "batch_size": batch_size,
    }


def files_left(root: Path) -> dict:
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    modes = sorted({stat.filemode(p.stat().st_mode) for p in files})
    return {
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "modes": modes,
        "root_mode": stat.filemode(root.stat().st_mode) if root.exists() else "-",
    }


def run_job(
    pg: ThrowawayPostgres,
    sim: Simulator,
    project: Path,
    home: Path,
    schema: str,
    n: int,
    batch: dict | None,
) -> dict:
    """One first sync through `meltano run`; timed, then checked."""
    env = meltano_env(pg, sim, home, schema)
    if batch is not None:
        env["TAP_FLOWFINITY_BATCH_CONFIG"] = json.dumps(batch)
    argv = [str(BIN / "meltano"), "run", "--no-install", "tap-flowfinity", "target-postgres"]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=project, env=env, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # Meltano, the tap, the target
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    if proc.returncode != 0:
        tail = proc.stderr[-3000:].decode(errors="replace")
        raise RuntimeError(f"meltano run exited {proc.returncode}: {tail}")
    rows, largest, unbatched = pg.query(
        'select count(*), max("lastSubmissionId"), count(*) filter (where _sdc_batched_at'
        f" is null) from {schema}.leads"
    )[0]
    state = subprocess.run(
        [str(BIN / "meltano"), "state", "get", STATE_ID],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    bookmark = json.loads(state)["singer_state"]["bookmarks"]["leads"]["replication_key_value"]
    return {
        "seconds": seconds,
        "cpu": cpu,
        "rate": n / seconds,
        "rows": int(rows or 0),
        "bookmark_ok": int(bookmark) == int(largest or -1),
        "sdc_batched_at_null": int(unbatched or 0),
    }


def probe_rerun(pg: ThrowawayPostgres, sim: Simulator, project: Path, workdir: Path, n: int) -> str:
    """The BATCH job twice over the same records: upserted (N rows) or appended (2N)?"""
    storage = workdir / "batches-probe"
    batch = batch_config(storage, 20_000)
    home = workdir / "m-probe"
    first = run_job(pg, sim, project, home, "b_probe", n, batch)
    env = meltano_env(pg, sim, home, "b_probe")
    env["TAP_FLOWFINITY_BATCH_CONFIG"] = json.dumps(batch)
    argv = [str(BIN / "meltano"), "run", "--no-install", "--full-refresh"]
    subprocess.run(
        [*argv, "tap-flowfinity", "target-postgres"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    rows, distinct = pg.query('select count(*), count(distinct "RecordID") from b_probe.leads')[0]
    left = files_left(storage)
    return (
        f"re-read in BATCH mode: {first['rows']:,} rows after the first sync, {rows} rows"
        f" ({distinct} distinct RecordIDs) after a --full-refresh re-run; batch files left by"
        f" the two runs: {left['files']}, {'/'.join(left['modes'])} in {left['root_mode']}"
    )


def probe_sigterm(pg: ThrowawayPostgres, sim: Simulator, workdir: Path) -> str:
    """The tap alone in BATCH mode, SIGTERMed once the view is read: is any bookmark ahead?"""
    storage = workdir / "batches-sigterm"
    config = workdir / "tap-sigterm.json"
    views = [{"name": "leads", "url": sim.view_url}]
    config.write_text(
        json.dumps(
            {
                "username": USER,
                "password": PASSWORD,
                "views": views,
                "batch_config": batch_config(storage, 10_000_000),
            }
        )
    )
    out, err = workdir / "sigterm.out", workdir / "sigterm.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        tap = subprocess.Popen(
            [str(BIN / "tap-flowfinity"), "--config", str(config)], stdout=stdout, stderr=stderr
        )
        deadline = time.monotonic() + 600
        while "' done: " not in err.read_text() and tap.poll() is None:
            if time.monotonic() > deadline:
                tap.kill()
                raise RuntimeError("the tap did not finish reading the view")
            time.sleep(0.02)
        tap.send_signal(signal.SIGTERM)
        code = tap.wait(timeout=600)
    bookmark, covered = None, None
    for line in out.read_text().splitlines():
        message = json.loads(line)
        if message["type"] == "STATE":
            bookmark = message["value"]["bookmarks"]["leads"].get("replication_key_value")
        elif message["type"] == "BATCH":
            for url in message["manifest"]:
                with gzip.open(Path(url.removeprefix("file://")), "rt") as f:
                    largest = max(json.loads(row)["lastSubmissionId"] for row in f)
                covered = largest if covered is None else max(covered, largest)
    ahead = bookmark is not None and (covered is None or bookmark > covered)
    # What target-postgres makes of that output: the STATE it emits is what Meltano stores.
    env = meltano_env(pg, sim, workdir / "m-sigterm", "b_sigterm")
    with out.open("rb") as stdin:
        target = subprocess.run(
            [str(BIN / "meltano"), "invoke", "--no-install", "target-postgres"],
            cwd=REPO,
            env=env,
            stdin=stdin,
            capture_output=True,
            check=True,
        )
    states = [json.loads(x) for x in target.stdout.splitlines() if x.strip().startswith(b"{")]
    stored = states[-1]["bookmarks"]["leads"].get("replication_key_value") if states else None
    exists = pg.query("select to_regclass('b_sigterm.leads') is not null")[0][0] == "t"
    rows = pg.query("select count(*) from b_sigterm.leads")[0][0] if exists else 0
    return (
        f"SIGTERM after the view was read: tap exit code {code}, last STATE bookmark"
        f" {bookmark}, largest lastSubmissionId in its BATCH files {covered}:"
        f" {'the bookmark is AHEAD of the records sent' if ahead else 'no bookmark ahead'};"
        f" target-postgres fed that output emits bookmark {stored} with {rows} rows loaded"
    )


def probe_maps(sim: Simulator, workdir: Path) -> str:
    """The tap alone, a property deselected and one hashed by a stream map: RECORD vs BATCH."""
    base = workdir / "tap-maps.json"
    views = [{"name": "leads", "url": sim.view_url}]
    config = {"username": USER, "password": PASSWORD, "views": views}
    base.write_text(json.dumps(config))
    tap = str(BIN / "tap-flowfinity")
    discovered = subprocess.run(
        [tap, "--config", str(base), "--discover"], capture_output=True, check=True
    )
    catalog = json.loads(discovered.stdout)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == ["properties", "EmailAddress"]:
                item["metadata"]["selected"] = False
    (workdir / "catalog-maps.json").write_text(json.dumps(catalog))
    config["stream_maps"] = {"leads": {"FirstName": "md5(FirstName)"}}
    seen = {}
    for mode in ("RECORD", "BATCH"):
        storage = workdir / f"batches-maps-{mode}"
        if mode == "BATCH":
            config["batch_config"] = batch_config(storage, 10_000_000)
        path = workdir / f"tap-maps-{mode}.json"
        path.write_text(json.dumps(config))
        argv = [tap, "--config", str(path), "--catalog", str(workdir / "catalog-maps.json")]
        out = subprocess.run(argv, capture_output=True, check=True).stdout
        rows: list[dict] = []
        for line in out.splitlines():
            message = json.loads(line)
            if message["type"] == "RECORD":
                rows.append(message["record"])
            elif message["type"] == "BATCH":
                for url in message["manifest"]:
                    with gzip.open(Path(url.removeprefix("file://")), "rt") as f:
                        rows.extend(json.loads(row) for row in f)
        seen[mode] = (
            f"EmailAddress {'present' if 'EmailAddress' in rows[0] else 'absent'},"
            f" FirstName {rows[0]['FirstName']!r}"
        )
    return (
        "EmailAddress deselected, FirstName hashed by a stream map: RECORD messages:"
        f" {seen['RECORD']}; BATCH files: {seen['BATCH']}"
    )


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--records", type=int, nargs="+", help="default: 200000 (with --probe: 50000)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="RECORD/BATCH pairs per size")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=20_000,
        help="records per batch file (default: the shipped batch_size_rows of the target)",
    )
    parser.add_argument("--probe", action="store_true", help="check guarantees, no timing")
    args = parser.parse_args()
    if args.probe:
        return probe(args.records[0] if args.records else 50_000)
    sizes = sorted(args.records or [200_000])

    workdir = Path(tempfile.mkdtemp(prefix="ff-batch-bench-"))
    project = project_with_batch_setting(workdir)
    pg = ThrowawayPostgres(dbname="bench").start()
    results: list[tuple[int, int, str, dict, dict | None]] = []
    try:
        for n in sizes:
            sim = Simulator(n, workdir)
            try:
                for rep in range(args.repeat):
                    order = ["RECORD", "BATCH"] if rep % 2 == 0 else ["BATCH", "RECORD"]
                    for mode in order:
                        tag = f"{mode.lower()}_{n}_{rep}"
                        storage = workdir / f"batches-{tag}"
                        batch = None if mode == "RECORD" else batch_config(storage, args.batch_size)
                        log(f"{n:>9,} records, repeat {rep + 1}: {mode} ...")
                        r = run_job(pg, sim, project, workdir / f"m-{tag}", f"b_{tag}", n, batch)
                        left = files_left(storage) if batch is not None else None
                        log(
                            f"{n:>9,} records, repeat {rep + 1}: {mode}: {r['rate']:,.0f}/s,"
                            f" {r['cpu']:.0f} CPU s, {r['rows']:,} rows, bookmark"
                            f" {'ok' if r['bookmark_ok'] else 'WRONG'}"
                        )
                        results.append((n, rep, mode, r, left))
                        pg.execute(f"drop schema b_{tag} cascade")
                        shutil.rmtree(storage, ignore_errors=True)
            finally:
                sim.stop()
    finally:
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nMachine: {machine()}; load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"batch files of {args.batch_size:,} records (the SDK's JSONL encoder, gzip)\n")
    print(
        "| records | rep | mode   |  seconds | CPU s | records/s | rows ok | bookmark ok"
        " | _sdc_batched_at null | batch files left after the run |"
    )
    rule = [9, 5, 8, 10, 7, 11, 9, 13, 22, 3]
    print("|" + "|".join("-" * w for w in rule) + "|")
    for n, rep, mode, r, left in results:
        files = "-"
        if left is not None:
            files = (
                f"{left['files']} files, {left['bytes'] / 2**20:.1f} MiB, "
                f"{'/'.join(left['modes'])} in {left['root_mode']}"
            )
        print(
            f"| {n:>7,} | {rep + 1:>3} | {mode:<6} | {r['seconds']:>8.1f} | {r['cpu']:>5.0f}"
            f" | {r['rate']:>9,.0f}"
            f" | {'yes' if r['rows'] == n else 'NO ' + str(r['rows']):>7}"
            f" | {'yes' if r['bookmark_ok'] else 'NO':>11} | {r['sdc_batched_at_null']:>20,}"
            f" | {files} |"
        )
    print()
    for n in sizes:
        ratios, cpu = [], []
        for rep in range(args.repeat):
            pair = {m: r for (k, p, m, r, _) in results if k == n and p == rep}
            ratios.append(pair["BATCH"]["rate"] / pair["RECORD"]["rate"])
            cpu.append(pair["BATCH"]["cpu"] / pair["RECORD"]["cpu"])
        shown = ", ".join(f"{x:.2f}x" for x in ratios)
        print(
            f"{n:,} records: BATCH/RECORD rate {statistics.median(ratios):.2f}x (median of"
            f" {len(ratios)}: {shown}); adoption bar: >= 1.5x; BATCH/RECORD CPU seconds"
            f" {statistics.median(cpu):.2f}x"
        )
    return 0


def probe(n: int) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ff-batch-probe-"))
    project = project_with_batch_setting(workdir)
    pg = ThrowawayPostgres(dbname="bench").start()
    sim = Simulator(n, workdir)
    try:
        print(probe_maps(sim, workdir))
        print(probe_rerun(pg, sim, project, workdir, n))
        print(probe_sigterm(pg, sim, workdir))
    finally:
        sim.stop()
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
