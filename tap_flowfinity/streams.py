"""One Singer stream per synchronization view: the recipe, bookmarks, overlap, soft deletes.

Each view's requests go through its client (client.py) in the recipe's order
(recipe.py); this module turns the records into a Singer stream: where a run starts, the
bookmark, typed values, new fields, and the deleted flag.
"""

from __future__ import annotations

import logging
import typing as t
from datetime import datetime, timezone
from functools import cached_property
from http import HTTPStatus
from zoneinfo import ZoneInfo

import requests
from singer_sdk import metrics
from singer_sdk.singerlib import Catalog, CatalogEntry, Schema
from typing_extensions import override

from tap_flowfinity.client import ViewClient
from tap_flowfinity.errors import UnsortedView
from tap_flowfinity.fastpath import FastRecordMessages
from tap_flowfinity.fieldtypes import (
    FAIL,
    RAW_PROPERTY,
    RAW_SUFFIX,
    FieldTypeError,
    Misfit,
    RecordTyper,
    raw_text,
)
from tap_flowfinity.progress import Progress
from tap_flowfinity.recipe import Recipe
from tap_flowfinity.schema import DELETED_AT, infer_schema, property_for_values
from tap_flowfinity.sdk_seam import SeamStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context
    from singer_sdk.tap_base import Tap

    from tap_flowfinity.settings import TapSettings, ViewSettings


class ViewStream(FastRecordMessages, SeamStream):
    """A view's records, incrementally by submission id, keyed by RecordID.

    The view is sorted by the cursor, so the SDK can write the bookmark as records go
    (`is_sorted`): a run interrupted mid-stream resumes from its last STATE, not from zero.
    """

    path = ""
    primary_keys: t.ClassVar[list[str]] = ["RecordID"]
    is_sorted = True
    # parsing.py yields only JSON values and the typer (fieldtypes.py) converts only to JSON
    # values (tests/unit/test_stream_types.py checks both over random records).
    records_are_json_native = True

    def __init__(
        self,
        tap: Tap,
        settings: TapSettings,
        view: ViewSettings,
        schema: dict[str, t.Any] | None,
        bookmark: int | None = None,
    ) -> None:
        self.settings = settings
        self.view = view
        self.bookmark_at_start = bookmark
        super().__init__(tap=tap, name=view.name, schema=schema)
        self.replication_key = view.cursor_field
        self.STATE_MSG_FREQUENCY = settings.state_message_frequency
        self._view_schema = self.discover_schema() if schema is None else schema

    @property
    @override
    def schema(self) -> dict[str, t.Any]:
        """The catalog's schema of the view, else the one discovery inferred."""
        return self._view_schema

    def discover_schema(self) -> dict[str, t.Any]:
        """Infer the schema from a sample; the connection closes after it.

        The sample starts where this run's sync starts (the bookmark, less the lookback) or,
        without a bookmark, at `start_last_submission_id`: a view is never asked for history
        the sync does not need. Fields the sample lacks are added when a record brings them.
        """
        after = self.start_after(self.bookmark_at_start)
        return infer_schema(
            self.view, self.recipe.sample(self.settings.discovery_sample_size, after)
        )

    # The view

    @property
    @override
    def url_base(self) -> str:
        """The view's URL is opaque configuration: no pattern of Flowfinity's is assumed."""
        return self.view.url

    @override
    def get_url(self, context: Context | None) -> str:
        """Exactly the configured URL: the SDK's `{setting}` templating must not touch it."""
        return self.view.url

    @cached_property
    def client(self) -> ViewClient:
        """The view's HTTP client (the doctor and capture build theirs the same way)."""
        client = ViewClient.for_settings(self.settings, self.view, self.logger, self.user_agent)
        warning = client.url_warning()
        if warning:
            self.logger.warning(warning)
        return client

    @cached_property
    def recipe(self) -> Recipe:
        """The view's requests in the recipe's order, with retries."""
        return Recipe(self.client, self.settings, self.logger, self._log_request_duration)

    @override
    def request_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """The records after where this run starts (see recipe.py), with progress logged."""
        start = self.first_request_cursor(context)
        progress = Progress(
            self.logger,
            self.name,
            self.view.cursor_field,
            start,
            float(self.settings.progress_interval),
        )
        with self.get_http_request_counter() as request_counter, progress:
            request_counter.with_context(context)
            yield from self.recipe.read(start, progress, request_counter.increment)

    def _log_request_duration(self, response: requests.Response) -> None:
        """The SDK's `http_request_duration` metric, written through its public metrics API."""
        status = response.status_code
        point = metrics.Point(
            "timer",
            metric=metrics.Metric.HTTP_REQUEST_DURATION,
            value=response.elapsed.total_seconds(),
            tags={
                metrics.Tag.STREAM: self.name,
                metrics.Tag.ENDPOINT: self.path,
                metrics.Tag.HTTP_STATUS_CODE: status,
                metrics.Tag.STATUS: (
                    metrics.Status.SUCCEEDED
                    if status < HTTPStatus.BAD_REQUEST
                    else metrics.Status.FAILED
                ),
            },
        )
        metrics.log(self.metrics_logger, point)

    # Where a run starts

    def first_request_cursor(self, context: Context | None) -> int | None:
        """After the bookmark, less the lookback overlap; else after `start_last_submission_id`.

        The overlap re-reads submissions that became visible after larger ids were read. It
        never goes above the bookmark, and never back to the start of history.
        """
        return self.start_after(self.get_starting_replication_key_value(context))

    def start_after(self, bookmark: t.Any) -> int | None:
        """The cursor to start from, given the bookmark (None: no bookmark)."""
        if bookmark is not None:
            return max(int(bookmark) - self.settings.lookback, 0)
        return self.settings.start_last_submission_id

    @override
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
        self._unsaved = None  # ahead of records never emitted: never to be saved
        state = self.get_context_state(context)
        starting = self.get_starting_replication_key_value(context)
        if starting is None:
            state.pop("replication_key_value", None)
        else:
            state["replication_key_value"] = int(starting)
        self.mark_state_unsent()
        self.write_state_message()

    # The largest cursor emitted and not yet in the state (None: nothing unsaved), and its
    # context.
    _unsaved: int | None = None
    _unsaved_context: Context | None = None

    @override
    def note_cursor(self, record: dict[str, t.Any], context: Context | None) -> None:
        """Note the record's cursor; the state takes the largest when a STATE goes out.

        Updating the SDK's state dict for every record costs ~13% more CPU on a first
        sync (benchmarks/seam_costs.py), and nothing reads the dict between STATE messages:
        `before_state_message` saves the noted cursor first, so every STATE is the one a
        per-record update would have written. (A STATE written on SIGTERM may lag by up to
        `state_message_frequency` records: a resume re-reads them, it never skips any.)
        """
        cursor = record[self.view.cursor_field]
        if self._unsaved is None or cursor > self._unsaved:
            self._unsaved = cursor
            self._unsaved_context = context

    def _save_bookmark(self) -> None:
        """Advance the bookmark to the noted cursor, but never back (lookback re-reads).

        The SDK treats a smaller value in a sorted stream as a sort error; records below the
        bookmark are expected here (the lookback), and the bookmark must stay where it is.
        """
        if self._unsaved is None:
            return
        cursor, context = self._unsaved, self._unsaved_context
        self._unsaved = None
        state = self.get_context_state(context)
        bookmark = state.get("replication_key_value")
        if bookmark is not None and state.get("replication_key") == self.replication_key:
            bookmark = int(bookmark)
            state["replication_key_value"] = bookmark  # a hand-written state may hold a string
            if cursor <= bookmark:
                return
        self.advance_bookmark({self.view.cursor_field: cursor}, context)

    @override
    def before_state_message(self) -> None:
        """The noted cursor goes into the state before it is written or finalized."""
        self._save_bookmark()

    # Records

    @override
    def post_process(
        self, row: dict[str, t.Any], context: Context | None = None
    ) -> dict[str, t.Any] | None:
        """Type the record's values, take in new fields, and flag deleted records.

        The state is read as sent, before typing: with `flatten_selections: false` a state
        sent as a choice would otherwise be JSON text by then. `deleted_at_field` is read
        after typing, already converted (to UTC when a `timezone` is set). A deleted
        workflow state sets `_sdc_deleted_at`; every other state clears it.
        """
        deleted = self.client.is_deleted(row)
        self._type_record(row)
        row[DELETED_AT] = self._deleted_at(row) if deleted else None
        record_id = row.get("RecordID")
        if isinstance(record_id, int):
            row["RecordID"] = str(record_id)
        return row

    # Types and schema evolution

    @cached_property
    def _typer(self) -> RecordTyper:
        zone = ZoneInfo(self.view.timezone) if self.view.timezone else None
        skip = {"RecordID", self.view.cursor_field, DELETED_AT}
        return RecordTyper(flatten=self.view.flatten_selections, zone=zone, skip=skip)

    def _type_record(self, row: dict[str, t.Any]) -> None:
        """Convert the values to their columns' types; a misfit is kept (or fails the run).

        A field the schema lacks (a designer added it after discovery) is added to the
        schema first, so it is typed and reaches the target like any other.
        """
        properties = self.effective_schema["properties"]
        if not row.keys() <= properties.keys():  # no set built for the common case
            new = row.keys() - properties.keys()
            self._add_properties(
                {
                    name: property_for_values(self.view, name, [row[name]])
                    for name in row  # in the record's order: the SCHEMA is stable
                    if name in new
                },
                row,
            )
            properties = self.effective_schema["properties"]
        misfits = self._typer.convert(row, properties)
        for misfit in misfits:
            self._keep_misfit(row, misfit)
        for raw in self._typer.raw_columns:
            row.setdefault(raw, None)  # a value that fits clears an earlier misfit

    def _keep_misfit(self, row: dict[str, t.Any], misfit: Misfit) -> None:
        if not self.mask[("properties", misfit.field)]:
            return  # deselected: the SDK drops it, and its value must not leak into __raw
        record_id = row.get("RecordID", "unknown")
        shown = raw_text(misfit.value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        if self.view.on_type_error == FAIL:
            raise FieldTypeError(
                self.name,
                f"record {record_id} field {misfit.field!r}: {shown!r} does not fit type "
                f"{misfit.kind}",
                "correct the value in Flowfinity, change views[].field_types, or set "
                "on_type_error to keep_raw",
            )
        raw = misfit.field + RAW_SUFFIX
        if raw not in self.effective_schema["properties"]:
            self._add_properties({raw: dict(RAW_PROPERTY)}, row)
        row[misfit.field] = None
        row[raw] = raw_text(misfit.value)
        if misfit.field not in self._misfit_fields_logged:
            self._misfit_fields_logged.add(misfit.field)
            self.log(
                "View %r: record %s field %r holds %r, not a %s: the column is null and the "
                "value is kept in %r (further misfits of this field are not logged)",
                self.name,
                record_id,
                misfit.field,
                shown,
                misfit.kind,
                raw,
                level=logging.WARNING,
            )

    @cached_property
    def _misfit_fields_logged(self) -> set[str]:
        return set()

    def _add_properties(self, new: dict[str, dict[str, t.Any]], row: dict[str, t.Any]) -> None:
        """Add fields to the stream's schema mid-stream and announce it with a SCHEMA message.

        The SDK drops record keys its schema lacks (conformance uses the input catalog's
        schema when there is one) and the target only creates the columns a SCHEMA message
        names, so both schemas gain the fields, the stream maps are rebuilt from the new
        schema (hashing, aliasing and flattening apply to the new fields too), and the
        SCHEMA goes out before the record that carries them. New fields follow the stream's
        selection: the SDK's selection mask selects a property without metadata exactly when
        its stream is selected.
        """
        schemas = [self.schema]
        if self.effective_schema is not self.schema:
            schemas.append(self.effective_schema)  # the input catalog's
        for schema in schemas:
            schema["properties"].update(new)
        mapper = self.tap.mapper
        if mapper is not None:
            mapper.register_raw_streams_from_catalog(Catalog({self.tap_stream_id: self._entry()}))
            self.forget_stream_maps()
        for name, schema in new.items():
            self.log(
                "View %r: field %r is not in the schema (first in record %s): adding it as %s",
                self.name,
                name,
                row.get("RecordID", "unknown"),
                schema.get("type", "JSON"),
            )
        self.write_schema_message()

    def _entry(self) -> CatalogEntry:
        """The stream's catalog entry, as the SDK builds it for the mapper at start."""
        return CatalogEntry(
            tap_stream_id=self.tap_stream_id,
            stream=self.name,
            schema=Schema.from_dict(self.schema),
            metadata=self.metadata,
            key_properties=list(self.primary_keys),
            replication_key=self.replication_key,
            replication_method=self.replication_method,
            is_view=None,
            database=None,
            table=None,
            row_count=None,
            stream_alias=None,
        )

    def _deleted_at(self, row: dict[str, t.Any]) -> str:
        field = self.view.deleted_at_field
        if field and row.get(field):
            return str(row[field])
        return datetime.now(timezone.utc).isoformat(timespec="microseconds")
