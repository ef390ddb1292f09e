"""The simulator's data: apps, their records, and Flowfinity's one system-wide submission counter.

Every create, update or state change anywhere on the site takes the next `lastSubmissionId`,
which is what makes a "greater than the last id processed" query a complete change feed.
A submission can also be *held*: its id is taken now but it becomes visible only when
released (by hand, after a number of view reads, or once the counter has moved a number of ids
past it), which reproduces the race a strict "greater than" cursor loses records to.

Two more kinds of change the change feed cannot show, so only a whole-view read finds them:
- a *purge* removes a record physically (what a real site's Delete operation does): it never
  shows again, and it takes no submission id, since nothing is submitted that a view could send;
- a record can *leave* the view's filter (an update that moves it out, say "Region" no longer
  "West") and later *enter* it again: both are updates that take an id, but while outside, the
  record and every update to it are invisible, and it comes back with its newest id.
The RecordIDs a view no longer shows for either reason are its `gone` ones.
"""

from __future__ import annotations

import copy
import itertools
import threading
import typing as t
from dataclasses import dataclass, field

from flowfinity_simulator.synthetic import SyntheticRecords
from flowfinity_simulator.variants import Variants

FIRST_SUBMISSION_ID = 18_734_000
DEFAULT_STATE = "Open"
DELETED_STATE = "Deleted"

Record = dict[str, t.Any]


@dataclass
class App:
    """One Flowfinity app with its synchronization view (`view_key` names both in the API)."""

    view_key: str
    name: str
    view_name: str
    fields: t.Callable[[int], Record]
    records: dict[str, Record] = field(default_factory=dict)
    synthetic: SyntheticRecords | None = None  # a large read-only history, rendered lazily
    next_record_number: int = 227_500
    path: str | None = None  # the view's own URL path (a replayed capture's), else the pattern
    variants: Variants | None = None  # this view's own answers (a replayed capture's)
    cap: int = 0  # this view's own records-per-answer cap (0: the site's)
    exact_numbers: bool = False  # records hold Decimal numbers (a replayed capture's)
    outside: dict[str, Record] = field(default_factory=dict)  # out of the view's filter, latest
    purged: dict[str, Record] = field(default_factory=dict)  # removed, as they were last

    def hidden(self, record_id: str) -> bool:
        """Whether the view no longer shows this record (purged, or out of its filter)."""
        return record_id in self.outside or record_id in self.purged

    @property
    def view_path(self) -> str:
        return self.path or f"/Flowfinity/api/rest/v1/{self.name}/views/{self.view_name}"

    @property
    def operations_path(self) -> str:
        return f"/Flowfinity/api/rest/v1/{self.name}/operations"


@dataclass(eq=False)
class Held:
    """A submission whose id is taken but which readers cannot see yet.

    Use it as a context manager (`with sim.hold("leads") as h: ...` releases on exit) or call
    `release()` / `commit()`. It also becomes visible by itself after `reads_left` view reads of
    its app, or once the site-wide counter reaches `visible_at` (whichever comes first); both
    None means only a manual release makes it visible. Either way it keeps the id it was given
    when it started, so it appears below ids already read.
    """

    store: Store
    view_key: str
    record: Record
    handle: int = 0
    reads_left: int | None = None
    visible_at: int | None = None
    released: bool = False

    @property
    def submission_id(self) -> int:
        return int(self.record["lastSubmissionId"])

    @property
    def record_id(self) -> str:
        return str(self.record["RecordID"])

    def release(self) -> Record:
        """Make the submission visible, with the (now old) id it was given when it started."""
        return self.store.release(self)

    commit = release

    def to_json(self) -> dict[str, t.Any]:
        return {
            "hold": self.handle,
            "view": self.view_key,
            "reads_left": self.reads_left,
            "ids_left": (
                None if self.visible_at is None else max(self.visible_at - self.store.counter, 0)
            ),
            "released": self.released,
            "record": copy.deepcopy(self.record),
        }

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.released:
            self.release()


class Store:
    """Thread-safe records of every app, and the counter they share."""

    def __init__(self, first_submission_id: int = FIRST_SUBMISSION_ID) -> None:
        self._lock = threading.RLock()
        self._counter = first_submission_id
        self.apps: dict[str, App] = {}
        self._transactions: dict[str, Record] = {}
        self._held: dict[int, Held] = {}
        self._handles = itertools.count(1)

    def add_app(self, app: App) -> None:
        with self._lock:
            self.apps[app.view_key] = app

    def app(self, view_key: str) -> App:
        try:
            return self.apps[view_key]
        except KeyError:
            raise KeyError(f"no view {view_key!r}; views: {sorted(self.apps)}") from None

    # The counter

    def next_submission_id(self) -> int:
        with self._lock:
            self._counter += 1
            self._count_ids()
            return self._counter

    def advance_counter(self, by: int) -> int:
        """Other apps' submissions: the counter moves although this site's views do not."""
        with self._lock:
            self._counter += by
            self._count_ids()
            return self._counter

    @property
    def counter(self) -> int:
        return self._counter

    # Writes. `hold` is False (visible now), True (until released by hand) or a number of
    # view reads of this app after which the submission becomes visible by itself; `ids`, a
    # number of ids the counter must move past the submission's own before it is visible.

    def create(
        self,
        view_key: str,
        fields: Record | None = None,
        *,
        hold: bool | int = False,
        ids: int | None = None,
    ) -> t.Any:
        """A new record (RecordID null in Flowfinity's operation)."""
        with self._lock:
            record = self._new_record(view_key, fields)
            return self._submit(view_key, record, hold=hold, ids=ids)

    def create_together(self, view_key: str, items: t.Sequence[Record | None]) -> list[Record]:
        """New records submitted as one transaction: they share one submission id."""
        with self._lock:
            submission_id = str(self.next_submission_id())
            created = []
            for fields in items:
                record = self._new_record(view_key, fields)
                record["lastSubmissionId"] = submission_id
                created.append(self._commit(view_key, record))
            return created

    def _new_record(self, view_key: str, fields: Record | None) -> Record:
        """The app's next record with `fields` applied (no submission id yet)."""
        app = self.app(view_key)
        app.next_record_number += 1
        number = app.next_record_number
        record = app.fields(number)
        record.update(copy.deepcopy(fields or {}))
        record["RecordID"] = f"{number:09d}"
        record.setdefault("State", DEFAULT_STATE)
        return record

    def update(
        self,
        view_key: str,
        record_id: str,
        fields: Record,
        *,
        hold: bool | int = False,
        ids: int | None = None,
    ) -> t.Any:
        """A new version; a record outside the view's filter stays outside (and invisible)."""
        with self._lock:
            record = copy.deepcopy(self._current(view_key, record_id))
            record.update(copy.deepcopy(fields))
            record["RecordID"] = record_id
            return self._submit(view_key, record, hold=hold, ids=ids)

    def set_state(
        self, view_key: str, record_id: str, state: str, *, hold: bool | int = False
    ) -> t.Any:
        return self.update(view_key, record_id, {"State": state}, hold=hold)

    def delete(self, view_key: str, record_id: str, *, hold: bool | int = False) -> t.Any:
        """Flowfinity's recipe: deleting is a transition to the state named Deleted."""
        return self.set_state(view_key, record_id, DELETED_STATE, hold=hold)

    def restore(self, view_key: str, record_id: str, *, hold: bool | int = False) -> t.Any:
        return self.set_state(view_key, record_id, DEFAULT_STATE, hold=hold)

    def purge(self, view_key: str, record_id: str) -> Record:
        """Remove a record physically: no id is taken, and the view never shows it again.

        The answer is the record as it was last. A held submission of it that is released
        later is dropped, as the site would refuse an edit of a record that no longer exists.
        """
        with self._lock:
            last = copy.deepcopy(self._current(view_key, record_id))
            app = self.app(view_key)
            app.records.pop(record_id, None)
            app.outside.pop(record_id, None)
            app.purged[record_id] = last
            return copy.deepcopy(last)

    def leave(self, view_key: str, record_id: str, fields: Record | None = None) -> Record:
        """An update (with `fields`, if any) that moves the record out of the view's filter."""
        with self._lock:
            app = self.app(view_key)
            if record_id in app.outside:
                raise ValueError(f"record {record_id!r} is already outside view {view_key!r}")
            record = copy.deepcopy(self._current(view_key, record_id))
            record.update(copy.deepcopy(fields or {}))
            record["RecordID"] = record_id
            record["lastSubmissionId"] = str(self.next_submission_id())
            app.records.pop(record_id, None)
            app.outside[record_id] = record
            return copy.deepcopy(record)

    def enter(self, view_key: str, record_id: str, fields: Record | None = None) -> Record:
        """An update (with `fields`, if any) that brings a record back into the view's filter.

        It reappears with this update's id, newer than anything the view sent before.
        """
        with self._lock:
            app = self.app(view_key)
            if record_id not in app.outside:
                self._current(view_key, record_id)  # a purged or unknown record: KeyError
                raise ValueError(f"record {record_id!r} is not outside view {view_key!r}")
            record = app.outside.pop(record_id)
            record.update(copy.deepcopy(fields or {}))
            record["lastSubmissionId"] = str(self.next_submission_id())
            return self._commit(view_key, record)

    def remember_transaction(
        self, transaction_id: str, apply: t.Callable[[], Record]
    ) -> tuple[Record, bool]:
        """Apply an operation once per ExternalTransactionId; a repeat returns the first result."""
        with self._lock:
            if transaction_id in self._transactions:
                return copy.deepcopy(self._transactions[transaction_id]), False
            result = apply()
            self._transactions[transaction_id] = copy.deepcopy(result)
            return result, True

    def _current(self, view_key: str, record_id: str) -> Record:
        app = self.app(view_key)
        if record_id in app.purged:
            raise KeyError(f"record {record_id!r} of view {view_key!r} was purged")
        if record_id in app.records:
            return app.records[record_id]
        if record_id in app.outside:
            return app.outside[record_id]
        if app.synthetic is not None and (found := app.synthetic.get(record_id)) is not None:
            return found
        raise KeyError(f"no record {record_id!r} in view {view_key!r}")

    def _submit(
        self, view_key: str, record: Record, *, hold: bool | int, ids: int | None = None
    ) -> t.Any:
        if ids is not None and int(ids) < 1:
            raise ValueError("a hold's ids must be at least 1")
        record["lastSubmissionId"] = str(self.next_submission_id())
        if hold is False and ids is None:
            return self._commit(view_key, record)
        reads = None if isinstance(hold, bool) else int(hold)
        visible_at = None if ids is None else self._counter + int(ids)
        held = Held(
            self,
            view_key,
            record,
            handle=next(self._handles),
            reads_left=reads,
            visible_at=visible_at,
        )
        self._held[held.handle] = held
        return held

    def _commit(self, view_key: str, record: Record) -> Record:
        """Store a version, unless a newer one got there first (a held one released late).

        A record outside the view's filter stays outside; one purged meanwhile stays purged.
        """
        with self._lock:
            app = self.app(view_key)
            record_id = record["RecordID"]
            if record_id in app.purged:
                return copy.deepcopy(record)
            home = app.outside if record_id in app.outside else app.records
            current = home.get(record_id)
            if current is None or int(current["lastSubmissionId"]) < int(
                record["lastSubmissionId"]
            ):
                home[record_id] = record
            return copy.deepcopy(record)

    # Held submissions

    def release(self, held: Held) -> Record:
        with self._lock:
            if held.released:
                return copy.deepcopy(held.record)
            held.released = True
            self._held.pop(held.handle, None)
            return self._commit(held.view_key, held.record)

    def held(self, handle: int | None = None) -> list[Held]:
        with self._lock:
            if handle is not None:
                return [self._held[handle]] if handle in self._held else []
            return list(self._held.values())

    def _count_ids(self) -> None:
        """The counter moved: submissions held for a number of ids may be visible now."""
        for held in list(self._held.values()):
            if held.visible_at is not None and self._counter >= held.visible_at:
                self.release(held)

    def _count_read(self, view_key: str) -> None:
        """A view read went by: submissions held for a number of reads get closer to visible."""
        for held in list(self._held.values()):
            if held.view_key == view_key and held.reads_left is not None:
                held.reads_left -= 1
                if held.reads_left <= 0:
                    self.release(held)

    # Reads

    def read_view(self, view_key: str) -> tuple[list[Record], SyntheticRecords | None, set[str]]:
        """One view read: written records, synthetic history, and the RecordIDs it must skip.

        The written records are the visible ones, ascending; the history skips the records
        written since, purged, or out of the filter.

        Counts as a read for submissions held for a number of reads, after the snapshot, so a
        submission held for M reads is missing from exactly the next M reads.
        """
        with self._lock:
            app = self.app(view_key)
            # Stable: records sharing one id keep the order they were stored in.
            rows = sorted(app.records.values(), key=lambda r: int(r["lastSubmissionId"]))
            skip = set(app.records) | set(app.outside) | set(app.purged)
            self._count_read(view_key)
            return rows, app.synthetic, skip

    def truth(self, view_key: str) -> dict[str, Record]:
        """Every record the view shows now, at its latest version, by RecordID."""
        with self._lock:
            app = self.app(view_key)
            result: dict[str, Record] = {}
            if app.synthetic is not None:
                for record in app.synthetic.iter_from(None):
                    if not app.hidden(record["RecordID"]):
                        result[record["RecordID"]] = record
            result.update(copy.deepcopy(app.records))
            return result

    def gone(self, view_key: str) -> list[str]:
        """The RecordIDs the view no longer shows: purged, or out of its filter now.

        A record created and purged (or moved out) before any client read it is listed too.
        """
        with self._lock:
            app = self.app(view_key)
            return sorted(set(app.purged) | set(app.outside))
