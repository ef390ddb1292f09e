"""Is the tap's output the same at two revisions? Compare every Singer message of a sync.

Usage (from the repository root):

    .venv/bin/python benchmarks/compare_output.py --records 200000 --base f25521e --head HEAD
    .venv/bin/python benchmarks/compare_output.py --records 20000 --base-tap A --head-tap B
    .venv/bin/python benchmarks/compare_output.py --records 20000 --incremental 500 \
        --base fbe70a9 --head HEAD

One simulator serves a synthetic view of N Lead Registration records, each record with its
own submission id (no equal ids); each side runs a first sync of it (its own discovery
included) with stdout to a file. With `--incremental W`, W writes (creates, updates, deletes)
then change the view and each side runs again from the last STATE of its own first sync: the
incremental run, which is what is compared (the first sync's verdict is printed too). Both
sides read the same source: both first syncs run before the writes, both second runs after.

The outputs are compared message by message after masking what a clock decides
(tests/harness/singer_clocks.py): RECORD `time_extracted`, a reconciliation's table version
(RECORD and ACTIVATE_VERSION `version`, numbered per stream as they come), the `version` and
`at` of the state's `reconciled` and `reconciling` entries, and a record's `_sdc_deleted_at`
when the tap set it from the time it read the record (kept: whether it is set). Numbers are
compared exactly (decimals, not floats).
Verdicts: IDENTICAL (every message equal), SAME RECORDS (the RECORDs equal and in the same
order, stream and record; other messages differ, e.g. a newer revision's ACTIVATE_VERSION or
state keys: the first such differences are printed), DIFFERENT (the records differ: the first
differences are printed; exit status 1).

A git revision runs from a `git archive` of its tap_flowfinity package with this virtualenv's
dependencies; to compare revisions whose dependencies differ, give two tap executables
instead. Each side's wall and CPU seconds are printed too: one run on a noisy machine, a hint,
not a benchmark (that is `make bench`).
"""

from __future__ import annotations

import argparse
import collections
import io
import itertools
import json
import os
import random
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
from tests.harness.singer_clocks import ClockMask  # noqa: E402

USER, PASSWORD = "integration", "compare-password"
VIEW = "leads"
SIDES = ("base", "head")
SHOWN_DIFFERENCES = 5
# The writes of `--incremental`, by weight: most change existing records, as on a site.
WRITE_WEIGHTS = {"update": 5, "create": 3, "delete": 2}


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


def run_side(
    name: str, command: list, env: dict, config: Path, out: Path, state: Path | None = None
) -> tuple[float, float]:
    """Run one side's sync (from `state` if given): (wall seconds, CPU seconds of the tap)."""
    started = time.monotonic()
    cpu_before = _children_cpu()
    state_args = [] if state is None else ["--state", str(state)]
    with out.open("wb") as stdout:
        done = subprocess.run(
            [*command, "--config", str(config), *state_args],
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
    """The output's messages, masked (tests/harness/singer_clocks.py)."""
    mask = ClockMask(deleted_at=True)
    with path.open("rb") as lines:
        for line in lines:
            yield mask(json.loads(line, parse_float=Decimal))


def records(path: Path) -> t.Iterator[dict[str, t.Any]]:
    """The output's RECORDs as SAME RECORDS compares them: stream and record, in order."""
    for message in messages(path):
        if message.get("type") == "RECORD":
            yield {"stream": message.get("stream"), "record": message.get("record")}


def describe(a: dict[str, t.Any], b: dict[str, t.Any]) -> str:
    """The keys whose values differ (inside `record` for two RECORDs, per stream for STATEs)."""
    if a.get("type", "RECORD") == b.get("type", "RECORD") == "RECORD" and a.get("record") != b.get(
        "record"
    ):
        a, b = a["record"], b["record"]
    elif a.get("type") == b.get("type") == "STATE":
        return describe_state(a.get("value") or {}, b.get("value") or {})
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return "; ".join(f"{k}: base {a.get(k)!r:.120} != head {b.get(k)!r:.120}" for k in keys)


def describe_state(a: dict[str, t.Any], b: dict[str, t.Any]) -> str:
    """Two states' differences, by stream: the keys only one side has, the values that differ."""
    marks_a, marks_b = a.get("bookmarks") or {}, b.get("bookmarks") or {}
    parts = []
    for stream in sorted(marks_a.keys() | marks_b.keys()):
        one, other = marks_a.get(stream) or {}, marks_b.get(stream) or {}
        only_base = sorted(one.keys() - other.keys())
        only_head = sorted(other.keys() - one.keys())
        changed = sorted(k for k in one.keys() & other.keys() if one[k] != other[k])
        found = [
            f"{label}: {', '.join(keys)}"
            for label, keys in (
                ("only base has", only_base),
                ("only head has", only_head),
                ("differ", changed),
            )
            if keys
        ]
        if found:
            parts.append(f"STATE {stream}: {'; '.join(found)}")
    others = sorted(k for k in a.keys() | b.keys() if k != "bookmarks" and a.get(k) != b.get(k))
    if others:
        parts.append(f"STATE keys differ: {', '.join(others)}")
    return "; ".join(parts)


def differences_of(
    base: t.Iterable[dict[str, t.Any]], head: t.Iterable[dict[str, t.Any]], what: str
) -> tuple[collections.Counter[str], list[str]]:
    """Items by type in each side, and the differences found (at most SHOWN_DIFFERENCES).

    The counts are "<type>" for both sides' equal counts and "<type> (base)" / "(head)"
    when they differ, so a message type only one side emits shows.
    """
    counts: dict[str, collections.Counter[str]] = {
        "base": collections.Counter(),
        "head": collections.Counter(),
    }
    differences: list[str] = []
    index = -1
    for index, pair in enumerate(itertools.zip_longest(base, head)):
        a, b = pair
        for side, item in (("base", a), ("head", b)):
            if item is not None:
                counts[side][item.get("type", "RECORD")] += 1
        if a != b and len(differences) < SHOWN_DIFFERENCES:
            if a is None or b is None:
                only = "base" if b is None else "head"
                differences.append(f"{what} {index}: only {only} has {(a or b)!r:.160}")
            else:
                differences.append(f"{what} {index}: {describe(a, b)}")
    summary: collections.Counter[str] = collections.Counter()
    for kind in counts["base"].keys() | counts["head"].keys():
        if counts["base"][kind] == counts["head"][kind]:
            summary[kind] = counts["base"][kind]
        else:
            summary[f"{kind} (base)"] = counts["base"][kind]
            summary[f"{kind} (head)"] = counts["head"][kind]
    return summary, differences


def verdict(base: Path, head: Path, label: str) -> tuple[str, list[str]]:
    """IDENTICAL, SAME RECORDS or DIFFERENT for one pair of outputs, and the lines that say why."""
    counts, differences = differences_of(messages(base), messages(head), "message")
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    if not differences:
        return "IDENTICAL", [f"IDENTICAL ({label}): {summary}; every message equal, masked"]
    _, record_differences = differences_of(records(base), records(head), "record")
    if not record_differences:
        lines = [
            f"SAME RECORDS ({label}): {summary}; every RECORD equal and in the same order, "
            "other messages differ:"
        ]
        return "SAME RECORDS", lines + [f"  {line}" for line in differences]
    lines = [f"DIFFERENT ({label}): {summary}:"]
    return "DIFFERENT", lines + [f"  {line}" for line in record_differences]


def last_state(path: Path) -> dict[str, t.Any]:
    """The value of the output's last STATE message (unmasked: the next run starts from it)."""
    state: dict[str, t.Any] = {}
    with path.open("rb") as lines:
        for line in lines:
            message = json.loads(line)
            if message.get("type") == "STATE":
                state = message["value"]
    return state


def write(sim: Simulator, count: int, seed: int) -> collections.Counter[str]:
    """`count` writes to the view, as its users would make them: what was done, by kind."""
    rng = random.Random(seed)
    ids = sorted(sim.truth(VIEW))
    done: collections.Counter[str] = collections.Counter()
    kinds, weights = list(WRITE_WEIGHTS), list(WRITE_WEIGHTS.values())
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        if kind == "create":
            ids.append(sim.create(VIEW, {"Company": f"Compare {rng.randrange(10**6)}"})["RecordID"])
        elif kind == "update":
            sim.update(VIEW, rng.choice(ids), {"Summary": f"v{rng.randrange(10**6)}"})
        else:
            sim.delete(VIEW, rng.choice(ids))
        done[kind] += 1
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--base", help="git revision of the base side")
    parser.add_argument("--head", help="git revision of the head side")
    parser.add_argument("--base-tap", help="tap executable of the base side")
    parser.add_argument("--head-tap", help="tap executable of the head side")
    parser.add_argument(
        "--incremental",
        type=int,
        metavar="W",
        help="then W writes and a second run of each side from its own state: compare that",
    )
    parser.add_argument("--seed", type=int, default=1, help="of the writes (--incremental)")
    args = parser.parse_args()
    if not (args.base or args.base_tap) or not (args.head or args.head_tap):
        parser.error("give --base or --base-tap, and --head or --head-tap")
    if args.incremental is not None and args.incremental < 1:
        parser.error("--incremental takes the number of writes between the runs (1 or more)")

    labels = {side: args.__dict__[side] or args.__dict__[f"{side}_tap"] for side in SIDES}
    with tempfile.TemporaryDirectory(prefix="compare-output-") as tmp:
        workdir = Path(tmp)
        sides = {
            side: tap_command(args.__dict__[side], args.__dict__[f"{side}_tap"], workdir)
            for side in SIDES
        }
        with Simulator(username=USER, password=PASSWORD, synthetic=args.records) as sim:
            config = workdir / "config.json"
            view = {"name": VIEW, "url": sim.view_url(VIEW)}
            config.write_text(json.dumps({"username": USER, "password": PASSWORD, "views": [view]}))
            first = run_all(sides, labels, config, workdir, "first")
            if args.incremental is None:
                name, lines = verdict(
                    first["base"], first["head"], f"first sync, {args.records} records"
                )
            else:
                _, first_lines = verdict(first["base"], first["head"], "first sync")
                print("\n".join(first_lines))
                done = write(sim, args.incremental, args.seed)
                print(f"writes: {dict(sorted(done.items()))}", flush=True)
                second = run_all(sides, labels, config, workdir, "second", first)
                name, lines = verdict(
                    second["base"],
                    second["head"],
                    f"incremental run after {args.incremental} writes, {args.records} records",
                )
    print(f"{labels['base']} vs {labels['head']}:")
    for line in lines:
        print(line)
    return 1 if name == "DIFFERENT" else 0


def run_all(
    sides: dict[str, tuple[list, dict]],
    labels: dict[str, str],
    config: Path,
    workdir: Path,
    run: str,
    states_of: dict[str, Path] | None = None,
) -> dict[str, Path]:
    """One run of each side (from the last STATE of its output in `states_of`): the outputs."""
    outputs = {}
    for name, (command, env) in sides.items():
        state = None
        if states_of is not None:
            state = workdir / f"{name}-{run}-state.json"
            state.write_text(json.dumps(last_state(states_of[name])))
        outputs[name] = workdir / f"{name}-{run}.jsonl"
        wall, cpu = run_side(name, command, env, config, outputs[name], state)
        print(f"{run} run, {name} ({labels[name]}): {wall:.1f}s wall, {cpu:.1f}s CPU", flush=True)
    return outputs


if __name__ == "__main__":
    raise SystemExit(main())
