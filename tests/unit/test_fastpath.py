"""The fast path changes the tap's speed, never its output."""

from __future__ import annotations

from tap_flowfinity.fastpath import _needs_conformance


def test_schemas_whose_values_the_sdk_would_convert_take_the_sdk_path():
    assert _needs_conformance({"type": ["boolean", "null"]})
    assert _needs_conformance({"type": ["object"], "properties": {"a": {}}})
    assert _needs_conformance({"type": ["array"], "items": {"type": ["boolean"]}})
    assert _needs_conformance({"type": ["array"], "items": {"type": "object"}})
    assert _needs_conformance({"anyOf": [{"type": "string"}, {"type": "null"}]})
    assert not _needs_conformance({"type": ["string", "null"], "format": "date-time"})
    assert not _needs_conformance({"type": ["array", "null"], "items": {"type": "string"}})
    assert not _needs_conformance({"type": ["object", "null"], "additionalProperties": True})
    assert not _needs_conformance({})
