"""The simulator's data: apps, their records, and Flowfinity's one system-wide submission counter.

Every create, update or state change anywhere on the site takes the next `lastSubmissionId`,
which is what makes a "greater than the last id processed" query a complete change feed.
A submission can also be *held*: its id is taken now but it becomes visible only when
released, which reproduces the race a strict "greater than" cursor loses records to.
"""

from __future__ import annotations

import copy
import itertools
import threading
import typing as t
from dataclasses import dataclass, field

FIRST_SUBMISSION_ID = 18_734_000
DEFAULT_STATE = "Open"
DELETED_STATE = "Deleted"


@dataclass
class App:
    """One Flowfinity app with its synchronization view (`view_key` names both in the API)."""

    view_key: str
    name: str
    view_name: str
    fields: t.Callable[[int], dict[str, t.Any]]
    records: dict[str, dict[str, t.Any]] = field(default_factory=dict)
    synthetic: t.Any = None  # a SyntheticRecords serving a large read-only history
    next_record_number: int = 227_500

    @property
    def view_path(self) -> str:
        return f"/Flowfinity/api/rest/v1/{self.name}/views/{self.view_name}"

    @property
    def operations_path(self) -> str:
        return f"/Flowfinity/api/rest/v1/{self.name}/operations"


@dataclass
class Held:
    """A submission whose id is taken but which readers cannot see yet."""

    store: Store
    view_key: str
    record: dict[str, t.Any]

    def release(self) -> dict[str, t.Any]:
        """Make the submission visible, with the (now old) id it was given when it started."""
        return self.store._commit(self.view_key, self.record)


class Store:
    """Thread-safe records of every app, and the counter they share."""

    def __init__(self, first_submission_id: int = FIRST_SUBMISSION_ID) -> None:
        self._lock = threading.RLock()
        self._counter = first_submission_id
        self.apps: dict[str, App] = {}
        self._transactions: dict[str, dict[str, t.Any]] = {}

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
            return self._counter

    def advance_counter(self, by: int) -> int:
        """Other apps' submissions: the counter moves although this site's views do not."""
        with self._lock:
            self._counter += by
            return self._counter

    @property
    def counter(self) -> int:
        return self._counter

    # Writes

    def create(
        self, view_key: str, fields: dict[str, t.Any] | None = None, *, hold: bool = False
    ) -> t.Any:
        """A new record (RecordID null in Flowfinity's operation); `hold` delays visibility."""
        with self._lock:
            app = self.app(view_key)
            app.next_record_number += 1
            number = app.next_record_number
            record = app.fields(number)
            record.update(fields or {})
            record["RecordID"] = f"{number:09d}"
            record.setdefault("State", DEFAULT_STATE)
            return self._submit(view_key, record, hold=hold)

    def update(
        self, view_key: str, record_id: str, fields: dict[str, t.Any], *, hold: bool = False
    ) -> t.Any:
        with self._lock:
            record = copy.deepcopy(self._current(view_key, record_id))
            record.update(fields)
            return self._submit(view_key, record, hold=hold)

    def set_state(self, view_key: str, record_id: str, state: str) -> dict[str, t.Any]:
        return t.cast(dict, self.update(view_key, record_id, {"State": state}))

    def delete(self, view_key: str, record_id: str) -> dict[str, t.Any]:
        """Flowfinity's recipe: deleting is a transition to the state named Deleted."""
        return self.set_state(view_key, record_id, DELETED_STATE)

    def restore(self, view_key: str, record_id: str) -> dict[str, t.Any]:
        return self.set_state(view_key, record_id, DEFAULT_STATE)

    def remember_transaction(
        self, transaction_id: str, apply: t.Callable[[], dict[str, t.Any]]
    ) -> tuple[dict[str, t.Any], bool]:
        """Apply an operation once per ExternalTransactionId; a repeat returns the first result."""
        with self._lock:
            if transaction_id in self._transactions:
                return self._transactions[transaction_id], False
            result = apply()
            self._transactions[transaction_id] = result
            return result, True

    def _current(self, view_key: str, record_id: str) -> dict[str, t.Any]:
        app = self.app(view_key)
        if record_id in app.records:
            return app.records[record_id]
        if app.synthetic is not None and (found := app.synthetic.get(record_id)) is not None:
            return t.cast(dict, found)
        raise KeyError(f"no record {record_id!r} in view {view_key!r}")

    def _submit(self, view_key: str, record: dict[str, t.Any], *, hold: bool) -> t.Any:
        record["lastSubmissionId"] = str(self.next_submission_id())
        if hold:
            return Held(self, view_key, record)
        return self._commit(view_key, record)

    def _commit(self, view_key: str, record: dict[str, t.Any]) -> dict[str, t.Any]:
        with self._lock:
            self.app(view_key).records[record["RecordID"]] = record
            return copy.deepcopy(record)

    # Reads

    def visible_after(self, view_key: str, after: int | None) -> list[dict[str, t.Any]]:
        """The view's records with a larger id than `after` (all when None), ascending."""
        with self._lock:
            app = self.app(view_key)
            rows = [
                r
                for r in app.records.values()
                if after is None or int(r["lastSubmissionId"]) > after
            ]
            rows.sort(key=lambda r: int(r["lastSubmissionId"]))
            return [dict(r) for r in rows]

    def truth(self, view_key: str) -> dict[str, dict[str, t.Any]]:
        """Every visible record at its latest version, by RecordID."""
        with self._lock:
            app = self.app(view_key)
            result: dict[str, dict[str, t.Any]] = {}
            if app.synthetic is not None:
                for record in app.synthetic.iter_from(None):
                    result[record["RecordID"]] = record
            result.update(copy.deepcopy(app.records))
            return result


def interleaved_ids(start: int, gaps: t.Iterable[int]) -> t.Iterator[int]:
    """Ids as a busy site hands them out: increasing, with other apps' submissions between."""
    return itertools.accumulate(gaps, initial=start)
