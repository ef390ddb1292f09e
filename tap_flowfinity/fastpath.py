"""The per-record fast path: the same Singer output as the SDK's, for a fraction of the CPU.

Profiling a 100k-record first sync showed most of the tap's time outside the tap: the SDK
walks every record twice in Python (property selection, then type conformance, ~2 us per
field) and encodes every message with simplejson, flushing stdout after each one.
For records parsed from JSON both walks are no-ops whenever

- every property is selected (nothing to pop),
- every record key is in the schema (nothing the SDK would drop),
- no property schema asks for a conversion of JSON values (nested `properties` or
  `items`, boolean-only types), and
- every value is a JSON-native Python type (no datetime, bytes or float NaN to convert);
  array items are assumed to be (parsing.py and fieldtypes.py produce nothing else).

`FastRecordMessages` checks exactly that (the schema part once per schema, the record part
with two C-level set operations) and otherwise hands the record to the SDK unchanged, so the
output is the SDK's in every case. With the default stream map it hands the record itself to
the writer (writer.py), with no message object in between.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timezone
from decimal import Decimal

from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import RecordMessage
from typing_extensions import override

from tap_flowfinity.sdk_seam import SeamStream, is_exclusive_boolean_type
from tap_flowfinity.writer import FlowfinityWriter

# What parsing.py yields for JSON values (non-integers as Decimal, never float).
JSON_NATIVE_TYPES = frozenset({str, int, bool, type(None), dict, list, Decimal})


def _needs_conformance(property_schema: dict[str, t.Any]) -> bool:
    """Whether the SDK's conformance could change a JSON value under this property schema."""
    if "properties" in property_schema:
        return True  # the SDK recurses into objects (and may drop nested keys)
    if "anyOf" in property_schema or "oneOf" in property_schema:
        return True  # not worth reasoning about: let the SDK do it
    if "items" in property_schema:
        # An array of scalars (e.g. a multi-selection as strings): the SDK conforms each
        # item as a primitive, a no-op for JSON values unless the items are booleans.
        items = property_schema["items"]
        if not isinstance(items, dict) or "items" in items:
            return True
        item_types = items.get("type", [])
        item_types = [item_types] if isinstance(item_types, str) else item_types
        if not item_types or "object" in item_types or "array" in item_types:
            return True
        return _needs_conformance(items)
    try:
        return is_exclusive_boolean_type(property_schema)  # turns 0/1 into booleans
    except TypeError:
        return True


class FastRecordMessages(SeamStream):
    """A stream that skips the SDK's per-record selection and conformance when they are no-ops.

    The schema-level check is cached per properties identity and count, so a schema that
    gains a field or is replaced is checked again. Not noticed: a property schema changed in
    place (replace it instead), and a selection mask or stream maps changed without the
    properties changing (the SDK sets both up before a sync; ViewStream rebuilds them only
    when it adds properties). `fast_path = False` turns it off (the output is the same).
    """

    fast_path: t.ClassVar[bool] = True
    _fast_key: tuple[int, int] | None = None
    # Selection and conformance cannot change a JSON record under the current schema.
    _fast_ok: bool = False
    # The stream name of the only stream map when it passes records through as they are.
    _direct_alias: str | None = None
    # True for a stream whose records hold JSON-native values by construction, so only
    # their keys are checked per record.
    records_are_json_native: t.ClassVar[bool] = False

    def _fast_path_applies(self, record: dict[str, t.Any]) -> bool:
        properties = self.effective_schema["properties"]
        if (id(properties), len(properties)) != self._fast_key:
            self._compile_fast_path(properties)
        return (
            self._fast_ok
            and record.keys() <= properties.keys()
            and (
                self.records_are_json_native or set(map(type, record.values())) <= JSON_NATIVE_TYPES
            )
        )

    def _compile_fast_path(self, properties: dict[str, t.Any]) -> None:
        maps = self.stream_maps
        self._fast_ok = (
            self.fast_path
            and all(self.mask.values())
            and not any(_needs_conformance(p) for p in properties.values())
        )
        identity = (
            len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not maps[0].flattening_enabled
        )
        self._direct_alias = maps[0].stream_alias if identity else None
        self._fast_key = (id(properties), len(properties))

    @override
    def after_sync_records(self) -> None:
        """Records the writer buffered go out, also when the stream failed."""
        writer = self.tap.message_writer
        if isinstance(writer, FlowfinityWriter):
            writer.flush()

    @override
    def write_record_message(self, record: dict[str, t.Any]) -> None:
        """Write the record's RECORD messages, without the SDK's walks when they are no-ops.

        With the default (identity) stream map and no flattening, the SDK's message object
        and its dictionary copy are pure overhead too: the writer gets the record itself.
        """
        if not self._fast_path_applies(record):
            self.write_record_messages_the_sdks_way(record)
            return
        writer = self.tap.message_writer
        if self._direct_alias is not None and isinstance(writer, FlowfinityWriter):
            writer.write_record(self._direct_alias, record, self.record_version)
        else:
            for stream_map in self.stream_maps:
                mapped = stream_map.transform(record)
                if mapped is not None:
                    message = RecordMessage(
                        stream=stream_map.stream_alias,
                        record=mapped,
                        version=self.record_version,
                        time_extracted=datetime.now(timezone.utc),
                    )
                    self.tap.write_message(message)
        self.mark_state_unsent()
