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
from tap_flowfinity.lateness import NAMED_LATE, RECENT_IDS, LatenessWatch
from tap_flowfinity.prefetch import Reading
from tap_flowfinity.progress import Progress
from tap_flowfinity.recipe import Recipe
from tap_flowfinity.reconcile import (
    RECONCILED,
    RECONCILING,
    Pass,
    completed,
    in_progress,
    plan_pass,
)
from tap_flowfinity.schema import DELETED_AT, infer_schema, property_for_values
from tap_flowfinity.sdk_seam import SeamStream

# In the stream's state: the server was seen capping answers, so an answer may end inside a
# group of records sharing one id; every request asks from one below the last id (recipe.py).
ANSWERS_CAPPED = "answers_capped"

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context
    from singer_sdk.tap_base import Tap

    from tap_flowfinity.prefetch import ReadAhead
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
    # values (tests/unit/test_parsing.py and tests/unit/test_fieldtypes.py check each over
    # random values).
    records_are_json_native = True
    # post_process adds a field to the schema before its first record goes out.
    records_fit_schema = True

    def __init__(
        self,
        tap: Tap,
        settings: TapSettings,
        view: ViewSettings,
        schema: dict[str, t.Any] | None,
        bookmark: int | None = None,
        deadline: float | None = None,
        read_ahead: ReadAhead | None = None,
    ) -> None:
        self.settings = settings
        self.view = view
        self.bookmark_at_start = bookmark
        self.deadline = deadline  # `max_run_seconds`, as a time.monotonic() instant
        self.read_ahead = read_ahead
        super().__init__(tap=tap, name=view.name, schema=schema)
        self.replication_key = view.cursor_field
        self.STATE_MSG_FREQUENCY = settings.state_message_frequency
        self._view_schema = schema

    @property
    @override
    def schema(self) -> dict[str, t.Any]:
        """The catalog's schema of the view, else the one discovery infers (on first use).

        The tap asks every stream for it right after creating them, several views at once
        (`max_parallel_views`), so discovery too takes about the slowest view's time.
        """
        if self._view_schema is None:
            self._view_schema = self.discover_schema()
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
        """The records after where this run starts (see recipe.py), with progress logged.

        A reconciliation (reconcile.py) reads the whole view instead, its records carrying
        the pass's table version, and activates that version once its last record is out.
        An incremental run measures the late submissions it finds in its overlap
        (lateness.py). The view is read ahead by a background thread when the tap reads
        views in parallel (prefetch.py), else here: the same records, in the same order.
        """
        state = self.get_context_state(context)
        plan, start = self.read_plan
        self._pass = plan
        watch = LatenessWatch.from_state(
            state,
            self.bookmark_at_start,
            self.settings.lookback,
            judge=plan is None,
        )
        if plan is not None:
            self.record_version = plan.version
            state[RECONCILING] = in_progress(plan.version, plan.after, plan.records_before)
            self._pass_records_before_last_id = plan.records_before
            self.logger.info(
                "View %r: reconciling (%s): reading the whole view as table version %d",
                self.name,
                plan.reason,
                plan.version,
            )
        self._read_complete = False
        reading = self.read_ahead.take(self.name, start) if self.read_ahead else None
        if reading is None:
            reading = self.open_reading(start)
        with reading.request_counter, reading.progress:
            yield from self._watched(reading.records, watch)
            self._read_complete = True
            self._end_of_read(state, start, reading.progress, watch)

    @property
    def state_as_given(self) -> t.Mapping[str, t.Any]:
        """The stream's state, read without adding an entry for it to the tap's state.

        The read-ahead plans every view before the first stream syncs; the SDK's
        `get_context_state` would add an empty bookmark for each to every STATE written
        meanwhile, which a run reading one view at a time never writes.
        """
        entry = self.tap_state.get("bookmarks", {}).get(self.name)
        return entry if isinstance(entry, dict) else {}

    @cached_property
    def read_plan(self) -> tuple[Pass | None, int | None]:
        """The run's pass (None: incremental) and the cursor its first request asks from.

        Decided once, from the state the run was given (the SDK's starting value is set
        only when a stream syncs; the read-ahead opens the same read before that).
        """
        bookmark = self.bookmark_at_start
        plan = plan_pass(
            self.state_as_given,
            bookmark=bookmark,
            start_last_submission_id=self.settings.start_last_submission_id,
            every_hours=self.view.reconcile_every_hours,
            now=datetime.now(timezone.utc),
        )
        return plan, self.start_after(bookmark) if plan is None else plan.after

    def open_reading(self, start: int | None) -> Reading:
        """The view's read from `start`: records, progress and request counter (lazy)."""
        plan, _ = self.read_plan
        progress = Progress(
            self.logger,
            self.name,
            self.view.cursor_field,
            start,
            float(self.settings.progress_interval),
            mode="reconciling" if plan is not None else None,
        )
        request_counter = self.get_http_request_counter()
        request_counter.with_context(None)
        records = self.recipe.read(
            start,
            progress,
            request_counter.increment,
            self.deadline,
            capped=bool(self.state_as_given.get(ANSWERS_CAPPED)),
        )
        return Reading(progress, request_counter, records)

    # Whether this sync read its view to the end (else the read-ahead stops: the run failed,
    # or the SDK cut the stream short).
    _read_complete = False

    @override
    def after_sync_records(self) -> None:
        """Also stop reading ahead when this stream did not read all of its view."""
        super().after_sync_records()
        if self.read_ahead is not None and not self._read_complete:
            self.read_ahead.stop()

    def _watched(
        self, records: t.Iterable[dict[str, t.Any]], watch: LatenessWatch
    ) -> t.Iterator[dict[str, t.Any]]:
        """The read's records, their ids remembered and those in the overlap judged.

        A pass also keeps how far it got: its last id, and how many records it emitted
        below that id (a resumed pass asks that id again and counts its records anew).
        """
        cursor_field = self.view.cursor_field
        horizon = watch.known_to
        remember = watch.emitted.append
        plan = self._pass
        high = -1
        for counted, record in enumerate(records):
            value = record[cursor_field]
            if value > high:
                high = value
                remember(value)
                if plan is not None:
                    self._pass_last_id = value
                    self._pass_records_before_last_id = plan.records_before + counted
            if value <= horizon:
                watch.see(value, record.get("RecordID"))
            yield record

    def _end_of_read(
        self,
        state: dict[str, t.Any],
        start: int | None,
        progress: Progress,
        watch: LatenessWatch,
    ) -> None:
        """After the read's last record: activate a finished pass; report lateness; remember.

        The ACTIVATE_VERSION goes out after every record of the pass (the writer flushes
        them first) and before the STATE that records the pass as completed, so a target
        stores that STATE only after it has applied the version.
        """
        plan = self._pass
        if not self.recipe.read_complete:
            self.logger.info(
                "View %r: max_run_seconds (%g) has passed: stopped after the answer in hand "
                "at %s %s; the next run continues from there",
                self.name,
                self.settings.max_run_seconds or 0,
                self.view.cursor_field,
                progress.cursor,
            )
        elif plan is not None:
            self.write_activate_version(plan.version)
            state.pop(RECONCILING, None)
            state[RECONCILED] = completed(plan.version, datetime.now(timezone.utc))
            held = plan.records_before + progress.records
            progress.outcome_note = f"the view holds {held} records (table version {plan.version})"
            self._pass = None
            self.mark_state_unsent()
        if self.recipe.answers_capped:
            state[ANSWERS_CAPPED] = True
        self._report_lateness(watch)
        self._save_bookmark()
        bookmark = state.get("replication_key_value")
        memory = watch.memory(None if bookmark is None else int(bookmark), start)
        if memory is not None:
            state[RECENT_IDS] = memory
            self.mark_state_unsent()

    def _report_lateness(self, watch: LatenessWatch) -> None:
        """Each late submission found, and a warning when lateness nears `lookback`."""
        for late in watch.late[:NAMED_LATE]:
            self.logger.info(
                "View %r: record %s (submission id %d) was not visible when an earlier run "
                "read past it: found %d ids late",
                self.name,
                late.record_id,
                late.submission_id,
                late.late_by,
            )
        if not watch.late:
            return
        worst, lookback = watch.worst(), self.settings.lookback
        self.logger.info(
            "View %r: %d late submissions found in the overlap, the latest %d ids late "
            "(lookback %d)",
            self.name,
            len(watch.late),
            worst,
            lookback,
        )
        if worst * 2 >= lookback:
            self.logger.warning(
                "View %r: a submission became visible %d ids late, at least half of lookback "
                "(%d): raise the `lookback` setting, or a later one will be skipped until a "
                "reconciliation (`reconcile_every_hours`) loads it",
                self.name,
                worst,
                lookback,
            )

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
            # What the SDK's `get_records` does, without its generator in every record's way.
            yield from self.request_records(context)
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
        """The noted cursor goes into the state before it is written or finalized.

        A pass in progress records how far it got, so a stopped one resumes there.
        """
        self._save_bookmark()
        plan = self._pass
        if plan is not None and self._pass_last_id is not None:
            state = self.get_context_state(self.context)
            state[RECONCILING] = in_progress(
                plan.version, self._pass_last_id, self._pass_records_before_last_id
            )

    # The pass this run makes (None: incremental) and how far it got.
    _pass: Pass | None = None
    _pass_last_id: int | None = None
    _pass_records_before_last_id = 0

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
