"""Reconciliation: when a stream re-reads its whole view, and what its state remembers of it.

The incremental recipe cannot see a record removed with Flowfinity's Delete operation, one
that left the view's filter, or a submission that became visible more than `lookback` ids
late. A reconciliation reads every record the view shows now, each RECORD carrying a table
version, and ends with `ACTIVATE_VERSION`: the target then flags (or removes) every row of
an older version, i.e. every row the view no longer shows. The version is activated only
after the pass has emitted its last record, so no row the view still shows is ever flagged,
even when the pass is stopped half-way: the next run resumes the pass with the same version.

What the stream's state keeps (beside the SDK's bookmark keys):

- `reconciling`: a pass in progress: its `version`, the last id it emitted (`after`), and
  how many records it emitted below that id (`records`), as of the last STATE.
- `reconciled`: the last completed pass: when it ended (`at`, UTC) and its `version`.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

RECONCILING = "reconciling"
RECONCILED = "reconciled"


@dataclass(frozen=True)
class Pass:
    """A whole-view read this run makes: its table version, where it starts, and why."""

    version: int
    after: int | None  # ask from here (None: from the start of the view)
    records_before: int  # records an earlier run of the same pass emitted
    reason: str


def plan_pass(
    state: t.Mapping[str, t.Any],
    *,
    bookmark: int | None,
    start_last_submission_id: int | None,
    every_hours: float | None,
    now: datetime,
) -> Pass | None:
    """The pass this run makes, or None for an incremental run.

    A pass an earlier run began is finished first. Otherwise a run reconciles when it
    reads the view from its start anyway (no bookmark and no `start_last_submission_id`)
    or when the last completed pass is older than `every_hours` (never completed: older).
    """
    begun = state.get(RECONCILING)
    if isinstance(begun, dict) and isinstance(begun.get("version"), int):
        after = begun.get("after")
        return Pass(
            version=begun["version"],
            # One below: the last id's records may not all have been emitted (a group).
            after=None if after is None else max(int(after) - 1, 0),
            records_before=int(begun.get("records") or 0),
            reason=f"resuming the pass stopped after id {after}",
        )
    version = _new_version(state, now)
    if bookmark is None and start_last_submission_id is None:
        return Pass(version, None, 0, "no bookmark: the view is read from its start")
    if every_hours is None:
        return None
    last = _last_completed(state)
    if last is not None and now - last < timedelta(hours=every_hours):
        return None
    since = "never reconciled" if last is None else f"last reconciled {last.isoformat()}"
    return Pass(version, None, 0, f"reconcile_every_hours {every_hours:g}: {since}")


def _new_version(state: t.Mapping[str, t.Any], now: datetime) -> int:
    """A table version above every earlier one: milliseconds, never repeated."""
    version = int(now.timestamp() * 1000)
    done = state.get(RECONCILED)
    if isinstance(done, dict) and isinstance(done.get("version"), int):
        version = max(version, done["version"] + 1)
    return version


def _last_completed(state: t.Mapping[str, t.Any]) -> datetime | None:
    done = state.get(RECONCILED)
    if not isinstance(done, dict) or not isinstance(done.get("at"), str):
        return None
    try:
        at = datetime.fromisoformat(done["at"])
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def in_progress(version: int, after: int | None, records: int) -> dict[str, t.Any]:
    """The `reconciling` entry of a pass that has emitted up to `after`."""
    return {"version": version, "after": after, "records": records}


def completed(version: int, now: datetime) -> dict[str, t.Any]:
    """The `reconciled` entry of a pass that has just activated its version."""
    return {"at": now.isoformat(timespec="seconds"), "version": version}
