"""What a clock decides in the tap's Singer output, masked, so two runs of the same data compare.

The clock shows in RECORD `time_extracted`, in a reconciliation's table version (RECORD and
ACTIVATE_VERSION `version`, and the state's `reconciling`/`reconciled` `version`:
milliseconds when the pass began) and in when the pass ended (`reconciled.at`). A record's
`_sdc_deleted_at` is masked only on request (`deleted_at=True`, kept: whether it is set): the
tap takes it from the record where it can, so a comparison of two runs of one data set keeps it.

Each stream's distinct versions become `<version N>` in order of appearance rather than one
mask, so a RECORD whose version differs from the one activated still shows (two streams may
begin their passes in the same millisecond, or not). Used by the tests that compare two runs
and by `benchmarks/compare_output.py`.
"""

from __future__ import annotations

import copy
import typing as t

CLOCK = "<clock>"
DELETED_AT = "_sdc_deleted_at"
RECONCILIATION_KEYS = ("reconciling", "reconciled")


class ClockMask:
    """Masks one output's messages in place, numbering each stream's versions as they come."""

    def __init__(self, *, deleted_at: bool = False) -> None:
        self.deleted_at = deleted_at
        self._names: dict[tuple[t.Any, t.Any], str] = {}

    def __call__(self, message: dict[str, t.Any]) -> dict[str, t.Any]:
        kind = message.get("type")
        if kind == "RECORD":
            message.pop("time_extracted", None)
            record = message.get("record")
            if self.deleted_at and isinstance(record, dict) and record.get(DELETED_AT) is not None:
                record[DELETED_AT] = CLOCK
        if kind in ("RECORD", "ACTIVATE_VERSION") and "version" in message:
            message["version"] = self._name(message.get("stream"), message["version"])
        if kind == "STATE" and isinstance(message.get("value"), dict):
            bookmarks = message["value"].get("bookmarks")
            for stream, entry in (bookmarks if isinstance(bookmarks, dict) else {}).items():
                for key in RECONCILIATION_KEYS:
                    clocked = entry.get(key) if isinstance(entry, dict) else None
                    if not isinstance(clocked, dict):
                        continue
                    if "version" in clocked:
                        clocked["version"] = self._name(stream, clocked["version"])
                    if "at" in clocked:
                        clocked["at"] = CLOCK
        return message

    def _name(self, stream: t.Any, version: t.Any) -> str:
        known = sum(1 for named, _ in self._names if named == stream)
        return self._names.setdefault((stream, version), f"<version {known + 1}>")


def without_clocks(messages: t.Iterable[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """Copies of one run's messages, masked (`_sdc_deleted_at` kept)."""
    mask = ClockMask()
    return [mask(copy.deepcopy(message)) for message in messages]
