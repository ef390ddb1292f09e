"""Many views, one run: the wall time of a sync over 20 slow views, by `max_parallel_views`.

Usage (from the repository root):

    .venv/bin/python benchmarks/parallel_views.py [--views 20] [--delay 0.5] [--rounds 2]

A simulator serves `--views` views (the two demo apps and `--views - 2` more, `--records`
records each) and answers every view request after `--delay` seconds, as a busy site far
away would. Every run is the tap's CLI with the catalog (discovery done once, beforehand),
stdout to /dev/null, so each time is one whole sync as a scheduler sees it, process start
included. Measured side by side, rounds interleaved, median per setting:

- each view synced alone (its catalog entry only): the slowest of them is the floor a run
  over every view cannot beat;
- every view with `max_parallel_views` 1 (one view at a time), the default, and one per view;
- discovery (`--discover`, which `meltano run` does before each sync) with the same settings.

Printed: the wall times, and each run's ratio to the slowest single view. Each view takes two
requests (its records, then the empty answer that says nothing is left), so one view alone
costs two delays plus the process start; a run reading `p` views at once costs about
`ceil(views / p)` times the view's requests. The machine's noise applies: compare the ratios
of one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flowfinity_simulator import Fault, Simulator  # noqa: E402
from tap_flowfinity.settings import schema_default  # noqa: E402

TAP = str(Path(sys.executable).parent / "tap-flowfinity")
USER, PASSWORD = "integration", "parallel-views-password"


def run_tap(config: Path, catalog: Path | None) -> float:
    """One sync (no catalog: one discovery) through the CLI; its wall time (it must succeed)."""
    how = ["--discover"] if catalog is None else ["--catalog", str(catalog)]
    started = time.monotonic()
    done = subprocess.run(
        [TAP, "--config", str(config), *how],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"the tap failed:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--records", type=int, default=50, help="records per view")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds before each answer")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    default = int(schema_default("max_parallel_views"))
    settings = sorted({1, default, args.views})

    with (
        Simulator(password=PASSWORD, extra_apps=args.views - 2, demo_records=args.records) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        work = Path(tmp)
        views = [{"name": key, "url": sim.view_url(key)} for key in sim.view_keys()]
        base = {"username": USER, "password": PASSWORD, "views": views}
        (work / "all.json").write_text(json.dumps({**base, "max_parallel_views": args.views}))
        discovered = subprocess.run(
            [TAP, "--config", str(work / "all.json"), "--discover"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        catalog = json.loads(discovered)
        (work / "catalog.json").write_text(discovered)
        runs: dict[str, tuple[Path, Path | None]] = {}
        entries = {entry["tap_stream_id"]: entry for entry in catalog["streams"]}
        for view in views:
            entry = entries[view["name"]]
            alone = work / f"alone-{view['name']}"
            (alone.with_suffix(".json")).write_text(json.dumps({**base, "views": [view]}))
            (alone.with_suffix(".catalog")).write_text(json.dumps({"streams": [entry]}))
            runs[f"alone {view['name']}"] = (
                alone.with_suffix(".json"),
                alone.with_suffix(".catalog"),
            )
        for parallel in settings:
            config = work / f"parallel-{parallel}.json"
            config.write_text(json.dumps({**base, "max_parallel_views": parallel}))
            runs[f"parallel {parallel}"] = (config, work / "catalog.json")
            runs[f"discover {parallel}"] = (config, None)

        sim.faults.add(Fault("slow", delay=args.delay, times=None))
        times: dict[str, list[float]] = {name: [] for name in runs}
        for round_number in range(args.rounds):
            for name, (config, cat) in runs.items():
                times[name].append(run_tap(config, cat))
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)

    median = {name: statistics.median(values) for name, values in times.items()}
    alone = {name: value for name, value in median.items() if name.startswith("alone")}
    slowest_name = max(alone, key=alone.__getitem__)
    slowest = alone[slowest_name]
    print(
        f"{args.views} views x {args.records} records, every answer after {args.delay}s, "
        f"median of {args.rounds} rounds (wall seconds, process start included)"
    )
    print(
        f"  each view alone: fastest {min(alone.values()):.2f}s, slowest {slowest:.2f}s "
        f"({slowest_name.split()[1]})"
    )
    for parallel in settings:
        label = f"max_parallel_views {parallel}"
        if parallel == default:
            label += " (default)"
        value = median[f"parallel {parallel}"]
        print(f"  {label:<34} {value:6.2f}s  x{value / slowest:.2f} of the slowest view alone")
    for parallel in settings:
        value = median[f"discover {parallel}"]
        print(f"  discovery (--discover), {parallel:>2} at once   {value:6.2f}s")
    one = median["parallel 1"]
    print(f"  default vs one at a time: x{median[f'parallel {default}'] / one:.2f} of the time")


if __name__ == "__main__":
    main()
