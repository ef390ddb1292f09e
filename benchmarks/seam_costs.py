"""What each speed-motivated private SDK override buys, measured side by side.

Usage (from the repository root):

    .venv/bin/python benchmarks/seam_costs.py --records 200000 --rounds 5

tap_flowfinity/sdk_seam.py overrides three private SDK methods for speed only. Each variant
below turns one of them back into the SDK's own behaviour; every variant runs a first sync
of the same synthetic view (served by a `flowfinity-simulator` subprocess, so its CPU is not
counted) in a fresh process, stdout to /dev/null, rounds interleaved. Printed: the median
CPU seconds of the sync per variant and its ratio to the tap as shipped. The machine's noise
applies: compare ratios from one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
USER, PASSWORD = "integration", "seam-costs-password"

VARIANTS = {
    "as shipped": "",
    "SDK per-record state (_increment_stream_state)": "state",
    "SDK record messages (_write_record_message, fast path off)": "messages",
    "SDK record loop (_sync_records, plain loop off)": "loop",
}


def child(variant: str, url: str) -> None:
    """Run one sync in this process with `variant` undone; print its CPU seconds to stderr."""

    from tap_flowfinity.fastpath import FastRecordMessages
    from tap_flowfinity.sdk_seam import SeamStream
    from tap_flowfinity.streams import ViewStream
    from tap_flowfinity.tap import TapFlowfinity

    if variant == "state":
        ViewStream.note_cursor = SeamStream.note_cursor  # type: ignore[method-assign]
    elif variant == "messages":
        FastRecordMessages.fast_path = False
    elif variant == "loop":
        SeamStream.use_plain_record_loop = False
    config = {"username": USER, "password": PASSWORD, "views": [{"name": "leads", "url": url}]}
    tap = TapFlowfinity(config=config)
    started = time.process_time()
    tap.sync_all()
    print(json.dumps({"cpu": time.process_time() - started}), file=sys.stderr)


def start_simulator(records: int, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    ready = workdir / "ready.json"
    proc = subprocess.Popen(
        [
            *(str(BIN / "flowfinity-simulator"), "--port", "0", "--synthetic", str(records)),
            *("--username", USER, "--ready-file", str(ready)),
        ],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "FLOWFINITY_SIM_PASSWORD": PASSWORD},
    )
    deadline = time.monotonic() + 30
    while not (ready.exists() and ready.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())["views"]["leads"]


def measure(variant: str, url: str) -> float:
    done = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=True,
        cwd=REPO,
    )
    last = done.stderr.decode().strip().splitlines()[-1]
    return float(json.loads(last)["cpu"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.url)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_simulator(args.records, Path(tmp))
        try:
            seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
            for _ in range(args.rounds):
                for name, variant in VARIANTS.items():
                    seconds[name].append(measure(variant, url))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    base = statistics.median(seconds["as shipped"])
    print(f"{args.records} records, median of {args.rounds} rounds, CPU seconds of the sync:")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"  {name:60s} {median:6.2f}s  x{median / base:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
