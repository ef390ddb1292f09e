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
with at most two C-level set operations) and otherwise hands the record to the SDK unchanged, so the
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

    Whether they are is decided once per stream, at its first record, and again whenever
    the schema's properties gain a field, a SCHEMA message goes out or the stream maps are
    rebuilt (`_add_properties` in streams.py does all three). Not noticed: a property schema
    changed in place, or the properties, selection mask or stream maps replaced without a
    SCHEMA message (the SDK sets them all up before a sync). `fast_path = False` turns it off
    (the output is the same).
    """

    fast_path: t.ClassVar[bool] = True
    # The properties the fast path was decided for, and their count then (None: undecided).
    _fast_properties: dict[str, t.Any] | None = None
    _fast_count: int = -1
    # Selection and conformance cannot change a JSON record under the current schema.
    _fast_ok: bool = False
    # The writer and stream name when the only stream map passes records through as they
    # are and the writer can take a record without a message object.
    _direct: tuple[FlowfinityWriter, str] | None = None
    # True for a stream whose records hold JSON-native values by construction, so only
    # their keys are checked per record.
    records_are_json_native: t.ClassVar[bool] = False
    # True for a stream whose records never hold a key its schema lacks (it adds a field to
    # the schema before a record carries it), so not even their keys are checked.
    records_fit_schema: t.ClassVar[bool] = False

    def _fast_path_applies(self, record: dict[str, t.Any]) -> bool:
        properties = self._fast_properties
        if properties is None or len(properties) != self._fast_count:
            properties = self._compile_fast_path()
        return (
            self._fast_ok
            and (self.records_fit_schema or record.keys() <= properties.keys())
            and (
                self.records_are_json_native or set(map(type, record.values())) <= JSON_NATIVE_TYPES
            )
        )

    def _compile_fast_path(self) -> dict[str, t.Any]:
        properties: dict[str, t.Any] = self.effective_schema["properties"]
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
        writer = self.tap.message_writer
        self._direct = None
        if identity and isinstance(writer, FlowfinityWriter):
            self._direct = (writer, maps[0].stream_alias)
        self._fast_properties, self._fast_count = properties, len(properties)
        return properties

    def forget_fast_path(self) -> None:
        """Decide again at the next record whether the fast path applies."""
        self._fast_properties = None

    @override
    def write_schema_message(self) -> None:
        """A SCHEMA going out mid-stream means a changed schema: the fast path is decided again."""
        self.forget_fast_path()
        super().write_schema_message()

    @override
    def forget_stream_maps(self) -> None:
        """New stream maps: the fast path is decided again."""
        self.forget_fast_path()
        super().forget_stream_maps()

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
        direct = self._direct
        if direct is not None:
            direct[0].write_record(direct[1], record, self.record_version)
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
