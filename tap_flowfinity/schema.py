"""Stream schemas: fixed types for Flowfinity's system fields, inferred types for the rest.

Discovery reads a sample of the view (the oldest records, since the view is sorted by
submission id) and keeps every field it saw. Only what the values show without guessing is
typed from the sample (a choice is text or an array of text; JSON numbers and booleans keep
their type); text stays text unless `views[].field_types` declares a type, and
`views[].schema` can override any field's JSON schema outright.

The output depends only on the set of fields and values sampled, not on their order, so
`--discover` of an unchanged view prints the same catalog every time.
"""

from __future__ import annotations

import typing as t

from tap_flowfinity.fieldtypes import (
    INT64_BOUNDS,
    KEEP_RAW,
    RAW_PROPERTY,
    RAW_SUFFIX,
    STRICT_KINDS,
    infer_property,
    property_for_kind,
    shape_of,
)
from tap_flowfinity.settings import ViewSettings

DELETED_AT = "_sdc_deleted_at"

NULLABLE_DATETIME: dict[str, t.Any] = {"type": ["string", "null"], "format": "date-time"}


def system_properties(view: ViewSettings) -> dict[str, dict[str, t.Any]]:
    """The fields every synchronization view carries, with the types users can rely on."""
    return {
        "RecordID": {"type": ["string"]},
        # Submission ids are positive and (parse_cursor checks) fit a signed 64-bit integer.
        view.cursor_field: {"type": ["integer"], "minimum": 0, "maximum": INT64_BOUNDS["maximum"]},
        view.state_field: {"type": ["string", "null"]},
        "CreatedBy": {"type": ["string", "null"]},
        "CreatedOn": dict(NULLABLE_DATETIME),
        DELETED_AT: dict(NULLABLE_DATETIME),
    }


def declared_properties(view: ViewSettings) -> dict[str, dict[str, t.Any]]:
    """The columns `field_types` declares, each with its `__raw` side column when it can misfit.

    Declared fields are in the schema even when the sample lacks them, and their side column
    exists from the first sync, so queries on it never depend on whether a bad value came.
    """
    properties: dict[str, dict[str, t.Any]] = {}
    for name in sorted(view.field_types):
        kind = view.field_types[name]
        properties[name] = property_for_kind(kind)
        if kind in STRICT_KINDS and view.on_type_error == KEEP_RAW:
            properties[name + RAW_SUFFIX] = dict(RAW_PROPERTY)
    return properties


def property_for_values(
    view: ViewSettings, name: str, values: t.Iterable[t.Any]
) -> dict[str, t.Any]:
    """The schema of a field from values seen: the declared type, else the inferred one."""
    if name in view.schema_overrides:
        return dict(view.schema_overrides[name])
    if name in view.field_types:
        return property_for_kind(view.field_types[name])
    flatten = view.flatten_selections
    return infer_property({shape_of(value, flatten=flatten) for value in values})


def infer_schema(view: ViewSettings, sample: t.Iterable[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Build the stream schema from a sample of records: nothing seen in it is dropped."""
    seen: dict[str, set[str | None]] = {}
    flatten = view.flatten_selections
    for record in sample:
        for key, value in record.items():
            seen.setdefault(key, set()).add(shape_of(value, flatten=flatten))
    fixed = system_properties(view)
    properties = {key: infer_property(seen[key]) for key in sorted(seen) if key not in fixed}
    properties.update(fixed)
    properties.update(declared_properties(view))
    properties.update(view.schema_overrides)
    return {
        "type": "object",
        "properties": properties,
        "required": ["RecordID", view.cursor_field],
    }
