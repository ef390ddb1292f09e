"""Is the tap's output the same at two revisions? Compare every Singer message of one sync.

Usage (from the repository root):

    .venv/bin/python benchmarks/compare_output.py --records 200000 --base f25521e --head HEAD
    .venv/bin/python benchmarks/compare_output.py --records 20000 --base-tap A --head-tap B

One simulator serves a synthetic view of N Lead Registration records; each side runs a first
sync of it (its own discovery included) with stdout to a file; then the two outputs are
compared message by message, every field except RECORD's `time_extracted` (a clock
reading). Numbers are compared exactly (decimals, not floats). A git revision runs from a
`git archive` of its tap_flowfinity package with this virtualenv's dependencies; to compare
revisions whose dependencies differ, give two tap executables instead. Exit status 1 when
the outputs differ; the first differences are printed. Each side's wall and CPU seconds are
printed too: one run on a noisy machine, a hint, not a benchmark (that is `make bench`).
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
import typing as t
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flowfinity_simulator import Simulator  # noqa: E402

USER, PASSWORD = "integration", "compare-password"
SHOWN_DIFFERENCES = 5


def extract_revision(revision: str, into: Path) -> Path:
    """The revision's tap_flowfinity package, extracted under `into`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "tap_flowfinity"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def tap_command(revision: str | None, executable: str | None, workdir: Path) -> tuple[list, dict]:
    """The argv prefix and environment that run one side's tap."""
    if executable is not None:
        return [executable], dict(os.environ)
    assert revision is not None
    source = extract_revision(revision, workdir / revision.replace("/", "_"))
    env = {**os.environ, "PYTHONPATH": str(source)}
    return [sys.executable, "-m", "tap_flowfinity.tap"], env


def run_side(name: str, command: list, env: dict, config: Path, out: Path) -> tuple[float, float]:
    """Run one side's sync: (wall seconds, CPU seconds of the tap process)."""
    started = time.monotonic()
    cpu_before = _children_cpu()
    with out.open("wb") as stdout:
        done = subprocess.run(
            [*command, "--config", str(config)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=env,
            cwd=out.parent,  # not the repository: PYTHONPATH alone picks the revision
        )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr.decode()[-2000:])
        raise SystemExit(f"{name}: the tap failed (exit {done.returncode})")
    return elapsed, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def messages(path: Path) -> t.Iterator[dict[str, t.Any]]:
    with path.open("rb") as lines:
        for line in lines:
            message = json.loads(line, parse_float=Decimal)
            if message.get("type") == "RECORD":
                message.pop("time_extracted", None)
            yield message


def describe(a: dict[str, t.Any], b: dict[str, t.Any]) -> str:
    """The keys whose values differ (inside `record` for two RECORDs)."""
    if a.get("type") == b.get("type") == "RECORD" and a.get("record") != b.get("record"):
        a, b = a["record"], b["record"]
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return "; ".join(f"{k}: base {a.get(k)!r:.120} != head {b.get(k)!r:.120}" for k in keys)


def compare(base: Path, head: Path) -> tuple[collections.Counter[str], list[str]]:
    """Message counts by type, and the differences found (at most SHOWN_DIFFERENCES)."""
    counts: collections.Counter[str] = collections.Counter()
    differences: list[str] = []
    pairs = zip(messages(base), messages(head), strict=False)
    index = -1
    for index, (a, b) in enumerate(pairs):
        counts[a.get("type", "?")] += 1
        if a != b and len(differences) < SHOWN_DIFFERENCES:
            differences.append(f"message {index}: {describe(a, b)}")
    extra_base = sum(1 for _ in messages(base)) - (index + 1)
    extra_head = sum(1 for _ in messages(head)) - (index + 1)
    if extra_base or extra_head:
        differences.append(f"lengths differ: base has {extra_base}, head {extra_head} more")
    return counts, differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--base", help="git revision of the base side")
    parser.add_argument("--head", help="git revision of the head side")
    parser.add_argument("--base-tap", help="tap executable of the base side")
    parser.add_argument("--head-tap", help="tap executable of the head side")
    args = parser.parse_args()
    if not (args.base or args.base_tap) or not (args.head or args.head_tap):
        parser.error("give --base or --base-tap, and --head or --head-tap")

    with tempfile.TemporaryDirectory(prefix="compare-output-") as tmp:
        workdir = Path(tmp)
        sides = {
            "base": tap_command(args.base, args.base_tap, workdir),
            "head": tap_command(args.head, args.head_tap, workdir),
        }
        with Simulator(username=USER, password=PASSWORD, synthetic=args.records) as sim:
            config = workdir / "config.json"
            view = {"name": "leads", "url": sim.view_url("leads")}
            config.write_text(json.dumps({"username": USER, "password": PASSWORD, "views": [view]}))
            outputs = {}
            for name, (command, env) in sides.items():
                outputs[name] = workdir / f"{name}.jsonl"
                wall, cpu = run_side(name, command, env, config, outputs[name])
                label = args.__dict__[name] or args.__dict__[f"{name}_tap"]
                print(f"{name} ({label}): {wall:.1f}s wall, {cpu:.1f}s CPU", flush=True)
        counts, differences = compare(outputs["base"], outputs["head"])
    labels = {side: args.__dict__[side] or args.__dict__[f"{side}_tap"] for side in sides}
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    if differences:
        print(f"DIFFERENT ({labels['base']} vs {labels['head']}, {args.records} records):")
        for line in differences:
            print(f"  {line}")
        return 1
    print(
        f"IDENTICAL: {labels['base']} and {labels['head']}, {args.records} records: "
        f"{summary}; every message equal except RECORD time_extracted"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
