"""tap-flowfinity: settings and stream discovery."""

from __future__ import annotations

import copy
import logging
import sys
import typing as t
from functools import cached_property
from types import TracebackType

import click
from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError, RetriableAPIError
from singer_sdk.tap_base import CliTestOptionValue
from typing_extensions import override

from tap_flowfinity.doctor import run_doctor
from tap_flowfinity.errors import FlowfinityError
from tap_flowfinity.sdk_seam import cli_config, replace_excepthook
from tap_flowfinity.security import plain_http_warnings, protect, redact
from tap_flowfinity.settings import CONFIG_SCHEMA, TapSettings
from tap_flowfinity.streams import ViewStream
from tap_flowfinity.writer import FlowfinityWriter


class TapFlowfinity(Tap):
    """Syncs Flowfinity synchronization views, incrementally by `lastSubmissionId`."""

    name = "tap-flowfinity"
    package_name = "tap-flowfinity"
    # A copy: the SDK appends its built-in settings (stream_maps, ...) to this dict in place.
    config_jsonschema = copy.deepcopy(CONFIG_SCHEMA)
    # msgspec encoding, stdout flushed per block of records and before every STATE.
    message_writer_class = FlowfinityWriter

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        # From here on, no log record can carry the password.
        protect(self.settings.username, self.settings.password)

    @cached_property
    def settings(self) -> TapSettings:
        """The settings, typed and cross-checked: the only reader of the raw config."""
        return TapSettings.from_config(self.config)

    @override
    def discover_streams(self) -> list[ViewStream]:
        """One stream per configured view.

        A stream whose schema arrives in the input catalog uses it as is; only discovery
        (no catalog) reads a sample of the view to infer one.
        """
        views = self.settings.views
        for warning in plain_http_warnings(views):
            self.logger.warning(warning)
        return [
            ViewStream(
                tap=self, settings=self.settings, view=view, schema=self._catalog_schema(view.name)
            )
            for view in views
        ]

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
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test`: the view doctor (see doctor.py) instead of the SDK's one-record sync.

        `--test=schema` keeps the SDK's meaning. The exit status is 1 when a check failed.
        """
        if value != CliTestOptionValue.All.value:
            super().cb_test(ctx, param, value)
            return
        config, parse_env = cli_config(ctx)
        try:
            tap = cls(
                config=config,
                parse_env_config=parse_env,
                validate_config=True,
                setup_mapper=False,  # the mapper would discover, i.e. read every view first
            )
            views = list(tap.settings.views)
        except ConfigValidationError as exc:
            exit_invalid_settings(exc)
        ok = run_doctor(tap, views)
        ctx.exit(0 if ok else 1)


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
