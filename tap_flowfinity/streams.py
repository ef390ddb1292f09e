"""One Singer stream per synchronization view: bookmarks, overlap and soft deletes."""

from __future__ import annotations

import itertools
import typing as t
from datetime import datetime, timezone

from tap_flowfinity.client import FlowfinityStream
from tap_flowfinity.errors import UnsortedView
from tap_flowfinity.schema import DELETED_AT, infer_schema
from tap_flowfinity.settings import DEFAULT_LOOKBACK, DEFAULT_STATE_MESSAGE_FREQUENCY

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context
    from singer_sdk.tap_base import Tap

    from tap_flowfinity.settings import ViewSettings


class ViewStream(FlowfinityStream):
    """A view's records, incrementally by submission id, keyed by RecordID.

    The view is sorted by the cursor, so the SDK can write the bookmark as records go
    (`is_sorted`): a run interrupted mid-stream resumes from its last STATE, not from zero.
    """

    primary_keys: t.ClassVar[list[str]] = ["RecordID"]
    is_sorted = True

    def __init__(self, tap: Tap, view: ViewSettings, schema: dict[str, t.Any] | None) -> None:
        super().__init__(tap=tap, view=view, schema=schema)
        self.replication_key = view.cursor_field
        self.STATE_MSG_FREQUENCY = int(
            self.config.get("state_message_frequency") or DEFAULT_STATE_MESSAGE_FREQUENCY
        )
        if schema is None:
            self._schema = self.discover_schema()

    def discover_schema(self) -> dict[str, t.Any]:
        """Infer the schema from the view's first records; the connection closes after them."""
        size = int(self.config.get("discovery_sample_size") or 1)
        records = self._read_page(None, None)
        try:
            sample = list(itertools.islice(records, size))
        finally:
            records.close()  # type: ignore[attr-defined]
        return infer_schema(self.view, sample)

    # Where a run starts

    def first_request_cursor(self, context: Context | None) -> int | None:
        """After the bookmark, less the lookback overlap; else after `start_last_submission_id`.

        The overlap re-reads submissions that became visible after larger ids were read. It
        never goes above the bookmark, and never back to the start of history.
        """
        bookmark = self.get_starting_replication_key_value(context)
        if bookmark is not None:
            lookback = int(self.config.get("lookback", DEFAULT_LOOKBACK) or 0)
            return max(int(bookmark) - lookback, 0)
        start = self.config.get("start_last_submission_id")
        return None if start is None else int(start)

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Read the view; if it turns out unsorted, take back the bookmarks of this run.

        In an unsorted view a large id can come before smaller ones not yet read, so any
        bookmark this run wrote may be ahead of records never emitted. Re-emitting the
        run's starting bookmark makes the target store that one instead: the next run
        re-reads, and fails again until the view is sorted, rather than skipping records.
        """
        try:
            yield from super().get_records(context)
        except UnsortedView:
            self._rewind_bookmark(context)
            raise

    def _rewind_bookmark(self, context: Context | None) -> None:
        state = self.get_context_state(context)
        starting = self.get_starting_replication_key_value(context)
        if starting is None:
            state.pop("replication_key_value", None)
        else:
            state["replication_key_value"] = int(starting)
        self.state_manager.is_flushed = False
        self._write_state_message()

    def _increment_stream_state(
        self, latest_record: dict[str, t.Any], *, context: Context | None = None
    ) -> None:
        """Advance the bookmark, but never move it back for a record re-read by the overlap.

        The SDK treats a smaller value in a sorted stream as a sort error; records below the
        bookmark are expected here (the lookback), and the bookmark must stay where it is.
        """
        state = self.get_context_state(context)
        bookmark = state.get("replication_key_value")
        if bookmark is not None and state.get("replication_key") == self.replication_key:
            bookmark = int(bookmark)
            state["replication_key_value"] = bookmark  # a hand-written state may hold a string
            if latest_record[self.view.cursor_field] <= bookmark:
                return
        super()._increment_stream_state(latest_record, context=context)

    # Records

    def post_process(
        self, row: dict[str, t.Any], context: Context | None = None
    ) -> dict[str, t.Any] | None:
        """Flag records in a deleted workflow state; clear the flag on every other record."""
        row[DELETED_AT] = self._deleted_at(row) if self._is_deleted(row) else None
        record_id = row.get("RecordID")
        if isinstance(record_id, int):
            row["RecordID"] = str(record_id)
        return row

    def _is_deleted(self, row: dict[str, t.Any]) -> bool:
        state = row.get(self.view.state_field)
        if isinstance(state, dict):  # a state sent as a choice field: {"Selection": "Deleted"}
            state = state.get("Selection")
        return isinstance(state, str) and state in self.view.deleted_states

    def _deleted_at(self, row: dict[str, t.Any]) -> str:
        field = self.view.deleted_at_field
        if field and row.get(field):
            return str(row[field])
        return datetime.now(timezone.utc).isoformat(timespec="microseconds")
