"""Stream schemas: fixed types for Flowfinity's system fields, inferred types for the rest.

Discovery reads a sample of the view (the oldest records, since the view is sorted by
submission id) and keeps every field it saw. The view's settings can override any field's
schema, which is how a designer states what the sample cannot show.
"""

from __future__ import annotations

import typing as t
from decimal import Decimal

from tap_flowfinity.settings import ViewSettings

DELETED_AT = "_sdc_deleted_at"

NULLABLE_DATETIME: dict[str, t.Any] = {"type": ["string", "null"], "format": "date-time"}
# No "type": whatever JSON arrives is kept as it arrived (target-postgres stores it as JSONB).
ANY_JSON: dict[str, t.Any] = {}


def system_properties(view: ViewSettings) -> dict[str, dict[str, t.Any]]:
    """The fields every synchronization view carries, with the types users can rely on."""
    return {
        "RecordID": {"type": ["string"]},
        view.cursor_field: {"type": ["integer"]},
        view.state_field: {"type": ["string", "null"]},
        "CreatedBy": {"type": ["string", "null"]},
        "CreatedOn": NULLABLE_DATETIME,
        DELETED_AT: NULLABLE_DATETIME,
    }


def json_type_of(value: t.Any) -> str:
    """The JSON schema type name of a parsed JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, (float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def property_schema(seen_types: set[str]) -> dict[str, t.Any]:
    """The narrowest schema that accepts every value seen (and null, which may come later)."""
    types = seen_types - {"null"}
    if types == {"integer", "number"}:
        types = {"number"}
    if len(types) != 1:
        return dict(ANY_JSON)
    (only,) = types
    if only == "array":  # no "items": target-postgres then stores the array as JSONB
        return {"type": ["array", "null"]}
    if only == "object":
        return {"type": ["object", "null"], "additionalProperties": True}
    return {"type": [only, "null"]}


def infer_schema(view: ViewSettings, sample: t.Iterable[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Build the stream schema from a sample of records: nothing seen in it is dropped."""
    seen: dict[str, set[str]] = {}
    for record in sample:
        for key, value in record.items():
            seen.setdefault(key, set()).add(json_type_of(value))
    fixed = system_properties(view)
    properties = {key: property_schema(types) for key, types in seen.items() if key not in fixed}
    properties.update(fixed)
    properties.update(view.schema_overrides)
    return {
        "type": "object",
        "properties": properties,
        "required": ["RecordID", view.cursor_field],
    }
