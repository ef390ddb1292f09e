"""Running the tap against the simulator and judging its Singer output.

The two checks every fault test makes, on the tap's own stdout:

- exactly once: each record version (RecordID, lastSubmissionId) the view holds after the
  start is emitted once, and nothing else is;
- never ahead: when a STATE names bookmark B, every record version with an id <= B (after
  the start) has already been emitted, so a target that stores B has loaded all of them.
"""

from __future__ import annotations

import json
import subprocess
import typing as t
from collections import Counter
from pathlib import Path

from tap_flowfinity.recipe import Recipe
from tap_flowfinity.retries import RetryBudget
from tap_flowfinity.tap import TapFlowfinity
from tests.harness.meltano import TAP

STREAM = "leads"
ERROR_PREFIX = "tap-flowfinity: error: "


def record_sleeps(monkeypatch: t.Any) -> list[float]:
    """Make retry waits instant, and return the list of waits the tap asked for."""
    waits: list[float] = []
    original = Recipe.new_retry_budget

    def budget(self: Recipe) -> RetryBudget:
        made = original(self)
        made.sleep = waits.append
        return made

    monkeypatch.setattr(Recipe, "new_retry_budget", budget)
    return waits


def view_config(sim: t.Any, password: str, **extra: t.Any) -> dict[str, t.Any]:
    """A tap config reading the simulator's `leads` view, with `extra` settings."""
    return {
        "username": "integration",
        "password": password,
        "views": [{"name": STREAM, "url": sim.view_url(STREAM)}],
        **extra,
    }


def sync_in_process(
    capsys: t.Any, cfg: dict[str, t.Any], state: dict[str, t.Any] | None = None
) -> list[dict[str, t.Any]]:
    """The tap synced in this process from `state`: the Singer messages it wrote."""
    capsys.readouterr()
    TapFlowfinity(config=cfg, state=state).sync_all()
    return parse_output(capsys.readouterr().out)


def last_state(messages: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """The value of the last STATE message: what a target would store."""
    return [m for m in messages if m["type"] == "STATE"][-1]["value"]


def parse_output(text: str) -> list[dict[str, t.Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def bookmark(message: dict[str, t.Any], stream: str = STREAM) -> int | None:
    value = message["value"].get("bookmarks", {}).get(stream, {}).get("replication_key_value")
    return None if value is None else int(value)


def state_of(value: int | None, stream: str = STREAM) -> dict[str, t.Any]:
    entry: dict[str, t.Any] = {"replication_key": "lastSubmissionId"}
    if value is not None:
        entry["replication_key_value"] = value
    return {"bookmarks": {stream: entry}}


def versions(truth: dict[str, dict[str, t.Any]], after: int | None = None) -> set[tuple[str, int]]:
    """The (RecordID, lastSubmissionId) versions a sync from `after` must deliver."""
    return {
        (rid, int(r["lastSubmissionId"]))
        for rid, r in truth.items()
        if after is None or int(r["lastSubmissionId"]) > after
    }


def emitted(messages: list[dict[str, t.Any]], stream: str = STREAM) -> list[tuple[str, int]]:
    return [
        (m["record"]["RecordID"], m["record"]["lastSubmissionId"])
        for m in messages
        if m["type"] == "RECORD" and m["stream"] == stream
    ]


def states(messages: list[dict[str, t.Any]], stream: str = STREAM) -> list[int | None]:
    return [bookmark(m, stream) for m in messages if m["type"] == "STATE"]


def assert_never_ahead(
    messages: list[dict[str, t.Any]], expected: set[tuple[str, int]], stream: str = STREAM
) -> None:
    """Every STATE's bookmark covers only record versions already emitted before it."""
    seen: set[tuple[str, int]] = set()
    for message in messages:
        if message["type"] == "RECORD" and message["stream"] == stream:
            seen.add((message["record"]["RecordID"], message["record"]["lastSubmissionId"]))
        elif message["type"] == "STATE" and (b := bookmark(message, stream)) is not None:
            missing = {v for v in expected if v[1] <= b} - seen
            assert not missing, f"STATE {b} ahead of unwritten records {sorted(missing)[:5]}"


def assert_exactly_once(
    messages: list[dict[str, t.Any]], expected: set[tuple[str, int]], stream: str = STREAM
) -> None:
    """Each expected version emitted once, nothing else; and no STATE ahead of them."""
    counts = Counter(emitted(messages, stream))
    duplicated = {v: n for v, n in counts.items() if n > 1}
    assert not duplicated, f"emitted more than once: {sorted(duplicated.items())[:5]}"
    assert set(counts) == expected, (
        f"lost {sorted(expected - set(counts))[:5]}, extra {sorted(set(counts) - expected)[:5]}"
    )
    assert_never_ahead(messages, expected, stream)


def write_json(path: Path, value: t.Any) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def run_cli(
    tmp_path: Path,
    config: dict[str, t.Any],
    *,
    catalog: dict[str, t.Any] | None = None,
    state: dict[str, t.Any] | None = None,
    timeout: float = 120,
) -> tuple[int, list[dict[str, t.Any]], str]:
    """Run the tap's CLI: (exit status, Singer messages on stdout, stderr)."""
    argv = [TAP, "--config", write_json(tmp_path / "config.json", config)]
    if catalog is not None:
        argv += ["--catalog", write_json(tmp_path / "catalog.json", catalog)]
    if state is not None:
        argv += ["--state", write_json(tmp_path / "state.json", state)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return done.returncode, parse_output(done.stdout), done.stderr


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(ERROR_PREFIX)]
