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
  array items are assumed to be (ijson and fieldtypes.py produce nothing else).

`FastRecordMessages` checks exactly that (the schema part once per schema, the record part
with two C-level set operations) and otherwise hands the record to the SDK unchanged, so the
output is the SDK's in every case. `FlowfinityWriter` encodes with msgspec (falling back to
the SDK's encoder for what msgspec refuses, e.g. integers beyond 64 bits) and flushes stdout
before every non-RECORD message and when its buffer fills: a STATE line therefore never
reaches the target ahead of the records before it, and records never wait behind a STATE.
"""

from __future__ import annotations

import sys
import typing as t
from decimal import Decimal

import msgspec
from singer_sdk.helpers._typing import _is_exclusive_boolean_type
from singer_sdk.helpers._util import utc_now
from singer_sdk.singerlib import RecordMessage
from singer_sdk.singerlib.encoding.base import GenericSingerWriter
from singer_sdk.singerlib.json import serialize_json

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

# What ijson yields for JSON values (it parses non-integers as Decimal, never float).
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
        return _is_exclusive_boolean_type(property_schema)  # turns 0/1 into booleans
    except TypeError:
        return True


class FastRecordMessages:
    """Stream mixin: skip the SDK's per-record selection and conformance when they are no-ops.

    Put it before the SDK stream class in the bases. The schema-level check is cached per
    (schema, properties, mask) identity and property count, so a schema that gains a field
    or is replaced is checked again; a property schema changed in place is not noticed, so
    replace property schemas rather than mutating them.
    """

    _fast_key: tuple[int, int, int, int] | None = None
    _fast_ok: bool = False

    def _fast_path_applies(self, record: dict[str, t.Any]) -> bool:
        stream = t.cast(t.Any, self)
        schema = stream.effective_schema
        properties = schema["properties"]
        mask = stream.mask
        key = (id(schema), id(properties), len(properties), id(mask))
        if key != self._fast_key:
            self._fast_ok = all(mask.values()) and not any(
                _needs_conformance(p) for p in properties.values()
            )
            self._fast_key = key
        return (
            self._fast_ok
            and record.keys() <= properties.keys()
            and set(map(type, record.values())) <= JSON_NATIVE_TYPES
        )

    def _generate_record_messages(
        self, record: dict[str, t.Any]
    ) -> t.Generator[RecordMessage, None, None]:
        """The SDK's RECORD messages for `record`, without the walks that would not change it."""
        stream = t.cast(t.Any, self)
        if not self._fast_path_applies(record):
            yield from stream._generate_record_messages_sdk(record)
            return
        for stream_map in stream.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=stream._stream_version,
                    time_extracted=utc_now(),
                )

    def _generate_record_messages_sdk(
        self, record: dict[str, t.Any]
    ) -> t.Generator[RecordMessage, None, None]:
        return super()._generate_record_messages(record)  # type: ignore[misc]


_encoder = msgspec.json.Encoder(decimal_format="number")
_ENCODE_ERRORS = (msgspec.EncodeError, OverflowError, TypeError, ValueError, UnicodeError)
# Records are buffered up to this many bytes; every other message flushes.
_FLUSH_BYTES = 64 * 1024


class FlowfinityWriter(GenericSingerWriter[bytes, "Message"]):
    """Singer messages as JSON lines on stdout, encoded by msgspec, flushed in blocks."""

    def __init__(self) -> None:
        self._pending = 0

    def serialize_message(self, message: Message) -> bytes:
        """One message as a JSON line (without the newline)."""
        data = message.to_dict()
        try:
            return _encoder.encode(data)
        except _ENCODE_ERRORS:
            return serialize_json(data).encode()

    def write_message(self, message: Message) -> None:
        """Write a message; flush unless it is a RECORD that fits in the buffer."""
        line = self.format_message(message) + b"\n"
        out = sys.stdout.buffer
        out.write(line)
        self._pending += len(line)
        if self._pending >= _FLUSH_BYTES or not isinstance(message, RecordMessage):
            out.flush()
            self._pending = 0
