"""tap-flowfinity: settings and stream discovery."""

from __future__ import annotations

import logging
import sys
import typing as t

import click
from singer_sdk import Tap
from singer_sdk.exceptions import RetriableAPIError

from tap_flowfinity.errors import FlowfinityError
from tap_flowfinity.settings import CONFIG_SCHEMA, resolve_views
from tap_flowfinity.streams import ViewStream


class TapFlowfinity(Tap):
    """Syncs Flowfinity synchronization views, incrementally by `lastSubmissionId`."""

    name = "tap-flowfinity"
    package_name = "tap-flowfinity"
    config_jsonschema = CONFIG_SCHEMA

    def discover_streams(self) -> list[ViewStream]:
        """One stream per configured view.

        A stream whose schema arrives in the input catalog uses it as is; only discovery
        (no catalog) reads a sample of the view to infer one.
        """
        return [
            ViewStream(tap=self, view=view, schema=self._catalog_schema(view.name))
            for view in resolve_views(self.config)
        ]

    def _catalog_schema(self, stream_name: str) -> dict[str, t.Any] | None:
        entry = self.input_catalog.get_stream(stream_name) if self.input_catalog else None
        return entry.schema.to_dict() if entry else None

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's CLI, reporting our failures as the one line a scheduler shows.

        The SDK logs an uncaught exception with its traceback; for a failure we understand
        (a view's credentials, URL, sort order, body), the reason and the fix are the whole
        story, so stderr gets exactly that line and the traceback goes to debug logging.
        """
        command = super().get_singer_command()
        report_other = getattr(command, "excepthook", sys.__excepthook__)

        def report(exc_type: type[BaseException], exc: BaseException, tb: t.Any) -> None:
            if isinstance(exc, (FlowfinityError, RetriableAPIError)):
                cls.logger.debug("Traceback of the failure below", exc_info=(exc_type, exc, tb))
                print(f"tap-flowfinity: error: {exc}", file=sys.stderr, flush=True)
                logging.shutdown()
                return
            report_other(exc_type, exc, tb)

        command.excepthook = report  # type: ignore[attr-defined]
        return command


if __name__ == "__main__":
    TapFlowfinity.cli()
