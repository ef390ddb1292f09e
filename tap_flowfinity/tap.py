"""tap-flowfinity: settings and stream discovery."""

from __future__ import annotations

import copy
import functools
import json
import logging
import sys
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from types import TracebackType

import click
from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError, RetriableAPIError
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities
from singer_sdk.tap_base import CliTestOptionValue
from typing_extensions import override

from tap_flowfinity.capture import DEFAULT_CAPTURE_RECORDS, capture_site
from tap_flowfinity.doctor import DoctorReport, run_doctor
from tap_flowfinity.errors import FlowfinityError
from tap_flowfinity.prefetch import Job, ReadAhead
from tap_flowfinity.sdk_seam import cli_config, replace_excepthook
from tap_flowfinity.security import plain_http_warnings, protect, redact
from tap_flowfinity.settings import CONFIG_SCHEMA, TapSettings, ViewSettings
from tap_flowfinity.streams import ViewStream
from tap_flowfinity.unknown_settings import check_supported, unknown_setting_warnings
from tap_flowfinity.writer import FlowfinityWriter


class TapFlowfinity(Tap):
    """Syncs Flowfinity synchronization views, incrementally by `lastSubmissionId`."""

    name = "tap-flowfinity"
    package_name = "tap-flowfinity"
    # A copy: the SDK appends its built-in settings (stream_maps, ...) to this dict in place.
    config_jsonschema = copy.deepcopy(CONFIG_SCHEMA)
    # msgspec encoding, stdout flushed per block of records and before every STATE.
    message_writer_class = FlowfinityWriter
    # Not BATCH: the SDK's batch path can store a bookmark ahead of its last file, skips
    # selection and stream maps, and leaves readable files behind (README "BATCH messages").
    # Without the capability the SDK neither advertises BATCH nor adds `batch_config`.
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [
        capability for capability in Tap.capabilities if capability != PluginCapabilities.BATCH
    ]

    def __init__(self, *args: t.Any, state: t.Any = None, **kwargs: t.Any) -> None:
        # The SDK discovers the streams before it loads the state; discovery needs the
        # bookmarks to sample from them rather than from the start of history.
        self.bookmarks_at_start = bookmarks_of(state)
        # `max_run_seconds` counts from here: the run is what a scheduler waits for.
        self.started_at = time.monotonic()
        super().__init__(*args, state=state, **kwargs)
        # From here on, no log record can carry the password.
        protect(self.settings.username, self.settings.password)

    @cached_property
    def settings(self) -> TapSettings:
        """The settings, typed and cross-checked: the only reader of the raw config."""
        check_supported(self.config)
        return TapSettings.from_config(self.config)

    @cached_property
    def unknown_settings(self) -> list[str]:
        """A warning per config key the tap does not know (a misspelled setting), read once."""
        return unknown_setting_warnings(self.config, self.final_config_schema())

    @classmethod
    def final_config_schema(cls) -> dict[str, t.Any]:
        """The config schema the SDK validates: the tap's own plus the SDK's built-in settings."""
        schema = copy.deepcopy(cls.config_jsonschema)
        cls.append_builtin_config(schema)
        return schema

    @override
    def discover_streams(self) -> list[ViewStream]:
        """One stream per configured view.

        A stream whose schema arrives in the input catalog uses it as is; only discovery
        (no catalog) reads a sample of the view to infer one.
        """
        views = self.settings.views
        for warning in [*self.unknown_settings, *plain_http_warnings(views)]:
            self.logger.warning(warning)
        streams = [
            ViewStream(
                tap=self,
                settings=self.settings,
                view=view,
                schema=self._catalog_schema(view.name),
                bookmark=self._bookmark_at_start(view),
                deadline=self._deadline(),
                read_ahead=self.read_ahead,
            )
            for view in views
        ]
        self._discover_schemas([s for s in streams if self._catalog_schema(s.name) is None])
        return streams

    def _discover_schemas(self, streams: list[ViewStream]) -> None:
        """Sample the views without a catalog schema, up to `max_parallel_views` at once.

        A failure is raised as reading them one by one would raise it: the first failing
        view's, in the configured order.
        """
        workers = min(self.settings.max_parallel_views, len(streams))
        if workers <= 1:
            for stream in streams:
                _ = stream.schema
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="tap-flowfinity-discovery") as pool:
            for _ in pool.map(lambda stream: stream.schema, streams):
                pass

    @cached_property
    def read_ahead(self) -> ReadAhead:
        """Reads the next views while a stream is written (`max_parallel_views`)."""
        return ReadAhead(self.settings.max_parallel_views, self._views_to_read, self.logger)

    def _views_to_read(self) -> list[Job]:
        """The views this run syncs, in the SDK's order, each from the bookmark it was given.

        Called when the first stream syncs, so the catalog's selection is known: a
        deselected view is never read.
        """
        jobs = []
        for stream in self.streams.values():
            if isinstance(stream, ViewStream) and stream.selected:
                _, start = stream.read_plan
                jobs.append(Job(stream.name, start, functools.partial(stream.open_reading, start)))
        return jobs

    def _deadline(self) -> float | None:
        """When streams stop asking (`max_run_seconds`), as a time.monotonic() instant."""
        limit = self.settings.max_run_seconds
        return None if limit is None else self.started_at + limit

    def _bookmark_at_start(self, view: ViewSettings) -> int | None:
        """The view's bookmark in the state this run was given (None: no usable one)."""
        bookmark = self.bookmarks_at_start.get(view.name)
        if not isinstance(bookmark, dict):
            return None
        if bookmark.get("replication_key", view.cursor_field) != view.cursor_field:
            return None
        value = bookmark.get("replication_key_value")
        try:
            return None if value is None else int(value)
        except (TypeError, ValueError):
            return None

    def _catalog_schema(self, stream_name: str) -> dict[str, t.Any] | None:
        entry = self.input_catalog.get_stream(stream_name) if self.input_catalog else None
        return entry.schema.to_dict() if entry else None

    @classmethod
    @override
    def get_singer_command(cls) -> click.Command:
        """The SDK's CLI, reporting our failures as the one line a scheduler shows.

        The SDK logs an uncaught exception with its traceback; for a failure we understand
        (a view's credentials, URL, sort order, body), the reason and the fix are the whole
        story, so stderr gets exactly that line and the traceback goes to debug logging.
        """
        command = super().get_singer_command()
        report_other = getattr(command, "excepthook", sys.__excepthook__)

        def report(
            exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
        ) -> None:
            if isinstance(exc, (FlowfinityError, RetriableAPIError, ConfigValidationError)):
                cls.logger.debug("Traceback of the failure below", exc_info=(exc_type, exc, tb))
                line = redact(one_line(exc))
                print(f"tap-flowfinity: error: {line}", file=sys.stderr, flush=True)
                logging.shutdown()
                return
            report_other(exc_type, exc, tb)

        replace_excepthook(command, report)
        # `--state` is read before `--discover` runs, however the two are ordered on the
        # command line: `meltano run` passes the state to discovery, which samples from it.
        for option in command.params:
            if option.name == "state":
                option.is_eager = True
        command.params.extend(
            [
                click.Option(
                    ["--capture"],
                    metavar="FILE",
                    help=(
                        "Write what each view sends (first records, framing, the empty "
                        "answer) to FILE, masked, for `flowfinity-simulator --replay`."
                    ),
                    callback=cls.cb_capture,
                    expose_value=False,
                ),
                click.Option(
                    ["--capture-records"],
                    type=click.IntRange(min=1),
                    default=DEFAULT_CAPTURE_RECORDS,
                    show_default=True,
                    help="With --capture: records to read per view.",
                    is_eager=True,
                    expose_value=False,
                    callback=_remember,
                ),
                click.Option(
                    ["--capture-verbatim"],
                    is_flag=True,
                    help="With --capture: keep every value as sent (do not share the file).",
                    is_eager=True,
                    expose_value=False,
                    callback=_remember,
                ),
            ]
        )
        # The SDK installs the hook when the command runs, after the option callbacks: a
        # failure of `--discover` (a callback) must be one line too.
        sys.excepthook = report
        return command

    @classmethod
    @override
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """Sync (the SDK's), with invalid settings reported as one line, not a log dump."""
        try:
            super().invoke(*args, **kwargs)
        except ConfigValidationError as exc:
            exit_invalid_settings(exc)

    @classmethod
    @override
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """`--discover`, sampling each view after its bookmark when `--state` is given.

        Without a state the sample starts at `start_last_submission_id` when it is set, so
        discovery never asks a view for history a sync would not read.
        """
        if not value:
            return
        state_file = ctx.params.get("state")
        tap = cls.for_callback(ctx, json.load(state_file) if state_file is not None else None)
        tap.run_discovery()
        ctx.exit()

    @classmethod
    def cb_capture(cls, ctx: click.Context, param: click.Option, value: str | None) -> None:
        """`--capture FILE`: record each view for offline replay (see capture.py)."""
        if not value:
            return
        tap = cls.for_callback(ctx)
        for warning in tap.unknown_settings:
            tap.logger.warning(warning)
        masked = not ctx.meta.get("capture_verbatim", False)
        lines = capture_site(
            tap.settings,
            Path(value),
            records=int(ctx.meta.get("capture_records", DEFAULT_CAPTURE_RECORDS)),
            masked=masked,
            logger=tap.logger,
        )
        for line in lines:
            print(f"tap-flowfinity: captured {line}", file=sys.stderr)
        share = (
            "values masked: attach it to a bug report"
            if masked
            else "values VERBATIM: keep it private"
        )
        print(f"tap-flowfinity: capture written to {value} ({share})", file=sys.stderr)
        ctx.exit(0)

    @classmethod
    @override
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test`: the view doctor (see doctor.py) instead of the SDK's one-record sync.

        `--test=schema` keeps the SDK's meaning. The exit status is 1 when a check failed.
        """
        if value != CliTestOptionValue.All.value:
            super().cb_test(ctx, param, value)
            return
        tap = cls.for_callback(ctx)
        report = run_doctor(
            tap.settings, tap.settings.views, notes=tap.unknown_settings, logger=tap.logger
        )
        if report.passed:
            tap.write_test_records(report)
        ctx.exit(0 if report.passed else 1)

    def write_test_records(self, report: DoctorReport) -> None:
        """Each sampled view's SCHEMA and first record, written the way a sync writes them.

        A tap built on a catalog of the sampled schemas (so no view is read again) sets up its
        streams and stream maps as for a sync; each record then goes through the stream's own
        typing and the SDK's writer path, stream maps applied.
        """
        if not report.samples:
            return
        writer_tap = type(self)(
            config=dict(self.config), catalog=report.catalog(), validate_config=False
        )
        writer_tap.unknown_settings = []  # the doctor printed them already: not twice
        for view, records in report.samples:
            stream = writer_tap.streams[view.name]
            assert isinstance(stream, ViewStream)
            record = stream.post_process(dict(records[0])) or {}
            stream.write_schema_message()
            stream.write_record_messages_the_sdks_way(record)
        writer = writer_tap.message_writer
        if isinstance(writer, FlowfinityWriter):
            writer.flush()

    @classmethod
    def for_callback(
        cls, ctx: click.Context, state: dict[str, t.Any] | None = None
    ) -> TapFlowfinity:
        """The tap for an option callback that runs instead of a sync (invalid settings: exit).

        No mapper: setting one up discovers, i.e. reads every view, before the callback.
        """
        config, parse_env = cli_config(ctx)
        try:
            tap = cls(
                config=config,
                state=state,
                parse_env_config=parse_env,
                validate_config=True,
                setup_mapper=False,
            )
        except ConfigValidationError as exc:
            exit_invalid_settings(exc)
        return tap


def _remember(ctx: click.Context, param: click.Parameter, value: t.Any) -> None:
    """Keep an option's value for another option's callback (the SDK's invoke takes none)."""
    if param.name:
        ctx.meta[param.name] = value


def bookmarks_of(state: t.Any) -> dict[str, t.Any]:
    """The `bookmarks` of a state given as a dict or a file path ({} when there are none)."""
    if state is None or state == "":
        return {}
    if not isinstance(state, dict):
        with open(state, encoding="utf-8") as file:
            state = json.load(file)
    bookmarks = state.get("bookmarks") if isinstance(state, dict) else None
    return bookmarks if isinstance(bookmarks, dict) else {}


def exit_invalid_settings(exc: ConfigValidationError) -> t.NoReturn:
    """Report invalid settings as the one line a scheduler shows, and exit 1."""
    line = redact(one_line(exc))
    print(
        f"tap-flowfinity: error: {line} - fix the settings (`tap-flowfinity --about` lists them)",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(1)


def one_line(exc: BaseException) -> str:
    """The failure as the single line a scheduler shows (a settings error lists each problem)."""
    if isinstance(exc, ConfigValidationError):
        return f"invalid settings: {'; '.join(exc.errors) or exc}"
    return " ".join(str(exc).split())


if __name__ == "__main__":
    TapFlowfinity.cli()
