"""The fast path changes the tap's speed, never its output."""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime, timezone
from decimal import Decimal

from singer_sdk.singerlib import RecordMessage, StateMessage

from tap_flowfinity.fastpath import FlowfinityWriter, _needs_conformance


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


class FakeStdout:
    def __init__(self):
        self.buffer = io.BytesIO()
        self.flushes = []
        self.buffer.flush = lambda: self.flushes.append(len(self.buffer.getvalue()))


def test_writer_encodes_exactly_and_flushes_before_every_state(monkeypatch):
    out = FakeStdout()
    monkeypatch.setattr(sys, "stdout", out)
    writer = FlowfinityWriter()
    huge = 2**70  # beyond msgspec's range: the SDK's encoder takes over
    record = {"id": "007", "n": 9007199254740993, "d": Decimal("1.10"), "big": huge}
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    writer.write_message(RecordMessage(stream="s", record=record, time_extracted=when))
    assert out.flushes == [], "records are buffered"
    writer.write_message(StateMessage(value={"bookmarks": {"s": {"replication_key_value": 5}}}))
    assert out.flushes == [len(out.buffer.getvalue())], "a STATE flushes itself and all before"
    lines = out.buffer.getvalue().decode().splitlines()
    first = json.loads(lines[0], parse_float=Decimal)
    assert first["record"] == record
    assert '"d":1.10' in lines[0]
    assert json.loads(lines[1])["type"] == "STATE"
