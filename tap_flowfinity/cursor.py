"""The submission-id cursor: Flowfinity sends it as a digit string; we compare it as a number.

Lexical order puts "999" after "1000", so a string cursor would skip or repeat records
whenever the id gains a digit. Every cursor is made an exact Python int on arrival.
"""

from __future__ import annotations

import typing as t
from decimal import Decimal

from tap_flowfinity.errors import MalformedResponse
from tap_flowfinity.fieldtypes import INT64_BOUNDS
from tap_flowfinity.settings import ViewSettings

_MAX_CURSOR = INT64_BOUNDS["maximum"]  # the schema's promise, and target-postgres's bigint


def parse_cursor(record: dict[str, t.Any], view: ViewSettings) -> int:
    """Replace the record's cursor with its exact integer value, and return it."""
    field = view.cursor_field
    raw = record.get(field)
    # How Flowfinity sends it, first and without a call: digits that fit 64 bits (19 digits
    # always do; "0"*25 + "1" takes the general way).
    if type(raw) is str and len(raw) < 19 and raw.isdigit() and raw.isascii():
        record[field] = cursor = int(raw)
        return cursor
    value = _as_int(raw)
    if value is None or not 0 <= value <= _MAX_CURSOR:
        record_id = record.get("RecordID", "unknown")
        if value is not None:
            problem = f"record {record_id} has {field!r} {value}, outside 0..{_MAX_CURSOR}"
            fix = "set cursor_field to the field that holds the Last submission ID"
        elif raw is None:
            problem = f"record {record_id} has no {field!r} value"
            fix = (
                "add the system field 'Last submission ID' to the view, or set "
                "cursor_field to the field that holds it"
            )
        else:
            problem = f"record {record_id} has a non-numeric {field!r}: {str(raw)[:40]!r}"
            fix = "set cursor_field to the field that holds the Last submission ID"
        raise MalformedResponse(view.name, problem, fix)
    record[field] = value
    return value


def _as_int(raw: t.Any) -> int | None:
    if type(raw) is str and raw.isdigit() and raw.isascii():  # how Flowfinity sends it
        return int(raw)
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        return int(text) if text.isascii() and text.isdigit() else None
    if isinstance(raw, (Decimal, float)):
        try:
            whole = int(raw)
        except (ValueError, OverflowError, ArithmeticError):
            return None
        return whole if whole == raw else None
    return None
