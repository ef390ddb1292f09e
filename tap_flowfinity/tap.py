"""tap-flowfinity: settings and stream discovery."""

from __future__ import annotations

import typing as t

from singer_sdk import Tap

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


if __name__ == "__main__":
    TapFlowfinity.cli()
