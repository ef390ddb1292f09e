"""Late submissions, measured, so the operator can tell whether `lookback` is wide enough.

Flowfinity assigns a submission id when a submission starts; a slow one becomes visible after
larger ids were read. Each incremental run re-reads `lookback` ids below its bookmark. A record
found there whose id no earlier run emitted was late: it was not visible when the tap read
past its id. How late, in ids, is how far the bookmark was above it when it was found (a lower
bound: it may have become visible any time before). A submission later than `lookback` is
never found this way; only a reconciliation loads it, so lateness approaching `lookback` is
the warning sign.

To tell a late record from one re-read, the stream's state remembers the ids it emitted near
its bookmark: `recent_ids` = {"from": F, "to": T, "ids": [...]}: every id the view emitted in
(F, T], at most `RECENT_IDS_BOUND` of them (the newest; F rises when older ones are dropped).
That is ~10 KB of state per view at most.
"""

from __future__ import annotations

import typing as t
from collections import deque
from dataclasses import dataclass, field

RECENT_IDS = "recent_ids"
RECENT_IDS_BOUND = 1000
# How many late submissions a run names one by one in the log (all are counted).
NAMED_LATE = 20


@dataclass
class LateSubmission:
    """One record found in the overlap that no earlier run emitted."""

    record_id: t.Any
    submission_id: int
    late_by: int  # ids


@dataclass
class LatenessWatch:
    """Watches one run's records: remembers their ids, judges those in the overlap."""

    bookmark: int | None  # at the start of the run
    lookback: int
    # (known_from, known_to]: earlier runs' ids known; records with an id up to known_to are
    # judged (-1: none).
    known_from: int = 0
    known_to: int = -1
    known: frozenset[int] = frozenset()
    late: list[LateSubmission] = field(default_factory=list)
    emitted: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_IDS_BOUND))

    @classmethod
    def from_state(
        cls, state: t.Mapping[str, t.Any], bookmark: int | None, lookback: int, *, judge: bool
    ) -> LatenessWatch:
        """The watch for a run, given the state's memory (`judge`: an incremental run)."""
        watch = cls(bookmark=bookmark, lookback=lookback)
        memory = state.get(RECENT_IDS)
        if judge and bookmark is not None and isinstance(memory, dict):
            try:
                watch.known_from = int(memory["from"])
                watch.known_to = min(int(memory["to"]), bookmark)
                watch.known = frozenset(int(i) for i in memory["ids"])
            except (KeyError, TypeError, ValueError):
                watch.known_to = -1  # a memory of another shape: judge nothing
        return watch

    def see(self, submission_id: int, record_id: t.Any) -> None:
        """A record at or below `known_to`: late if no earlier run emitted its id."""
        if submission_id > self.known_from and submission_id not in self.known:
            late_by = (self.bookmark or 0) - submission_id  # known_to needs a bookmark
            self.late.append(LateSubmission(record_id, submission_id, late_by))

    def memory(self, bookmark: int | None, first_ask: int | None) -> dict[str, t.Any] | None:
        """The state's `recent_ids` after this run (None: nothing known to remember).

        This run read everything above its first request's cursor, so what it emitted there
        is complete; it keeps the newest ids within `lookback` of the new bookmark.
        """
        if bookmark is None:
            return None
        floor = max(first_ask if first_ask is not None else -1, bookmark - self.lookback)
        ids = [i for i in self.emitted if floor < i <= bookmark]
        if len(self.emitted) == self.emitted.maxlen and self.emitted:
            floor = max(floor, self.emitted[0] - 1)  # older ids fell out of the memory
        return {"from": floor, "to": bookmark, "ids": ids}

    def worst(self) -> int:
        """The largest lateness found (0: none)."""
        return max((late.late_by for late in self.late), default=0)
