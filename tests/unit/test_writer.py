"""The writer: exact encoding, records in blocks, nothing ahead of or lost behind a STATE."""

from __future__ import annotations

import io
import itertools
import json
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal

from singer_sdk.singerlib import RecordMessage, SchemaMessage, StateMessage
from singer_sdk.singerlib.encoding.simple import SimpleSingerWriter

from tap_flowfinity.writer import FlowfinityWriter


class FakeStdout:
    """stdout whose flushes are recorded; `max_write` makes it take writes in parts, as an
    unbuffered stdout (PYTHONUNBUFFERED) on a pipe may."""

    def __init__(self, max_write: int | None = None):
        self.buffer = io.BytesIO()
        self.flushes: list[int] = []
        self.buffer.flush = lambda: self.flushes.append(len(self.buffer.getvalue()))
        if max_write is not None:
            write = self.buffer.write
            self.buffer.write = lambda data: write(bytes(data[:max_write]))

    def write(self, text: str) -> int:  # the SDK's own writer writes text
        return self.buffer.write(text.encode())

    def flush(self) -> None:
        self.buffer.flush()


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


def test_write_record_is_the_line_of_the_sdk_message(monkeypatch):
    """Same keys in the same order as the SDK's RecordMessage; only the stamp is reused."""
    record = {"RecordID": "1", "lastSubmissionId": 12, "o": {"a": [1, "x", None]}, "e": ""}
    for version in (None, 1700000000):
        direct, sdk = FakeStdout(), FakeStdout()
        monkeypatch.setattr(sys, "stdout", direct)
        writer = FlowfinityWriter()
        writer.write_record("leads", record, version)
        writer.flush()
        monkeypatch.setattr(sys, "stdout", sdk)
        message = RecordMessage(
            stream="leads",
            record=record,
            version=version,
            time_extracted=datetime.now(timezone.utc),
        )
        SimpleSingerWriter().write_message(message)
        ours, theirs = (json.loads(o.buffer.getvalue()) for o in (direct, sdk))
        assert list(ours) == list(theirs)
        assert ours.pop("time_extracted").endswith("Z")
        theirs.pop("time_extracted")
        assert ours == theirs


def test_records_stay_in_order_across_partial_writes(monkeypatch):
    out = FakeStdout(max_write=7)
    monkeypatch.setattr(sys, "stdout", out)
    writer = FlowfinityWriter()
    for n in range(2000):  # several blocks of 64 KiB
        writer.write_record("s", {"n": n, "pad": "x" * 60}, None)
    writer.write_message(SchemaMessage(stream="s", schema={"type": "object"}, key_properties=[]))
    lines = out.buffer.getvalue().decode().splitlines()
    assert [json.loads(line)["record"]["n"] for line in lines[:-1]] == list(range(2000))
    assert json.loads(lines[-1])["type"] == "SCHEMA"


def test_a_block_is_written_when_it_fills_not_per_record(monkeypatch):
    out = FakeStdout()
    monkeypatch.setattr(sys, "stdout", out)
    writer = FlowfinityWriter()
    for n in range(5000):
        writer.write_record("s", {"n": n, "pad": "x" * 60}, None)
    written = out.buffer.getvalue()
    assert len(out.flushes) == len(written) // (64 * 1024), out.flushes
    blocks = itertools.pairwise([0, *out.flushes])
    assert all(later - earlier >= 64 * 1024 for earlier, later in blocks)
    writer.flush()
    assert len(out.buffer.getvalue().decode().splitlines()) == 5000, "the partial block too"


def test_a_record_msgspec_refuses_is_written_whole_by_the_sdk_encoder(monkeypatch):
    out = FakeStdout()
    monkeypatch.setattr(sys, "stdout", out)
    writer = FlowfinityWriter()
    writer.write_record("s", {"n": 1}, None)
    writer.write_record("s", {"big": 2**70, "d": Decimal("0.10")}, None)  # beyond 64 bits
    writer.write_record("s", {"n": 3}, None)
    writer.flush()
    lines = [json.loads(line, parse_float=Decimal) for line in out.buffer.getvalue().splitlines()]
    assert [line["record"] for line in lines] == [
        {"n": 1},
        {"big": 2**70, "d": Decimal("0.10")},
        {"n": 3},
    ]


def test_records_of_two_streams_within_one_millisecond_keep_their_own_stream(monkeypatch):
    """The RECORD frame is reused only for the same stream and version, whatever the clock."""
    out = FakeStdout()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)  # every record in one instant
    writer = FlowfinityWriter()
    writer.write_record("leads", {"n": 1}, None)
    writer.write_record("orders", {"n": 2}, None)
    writer.write_record("orders", {"n": 3}, 7)
    writer.write_record("leads", {"n": 4}, None)
    writer.flush()
    lines = [json.loads(line) for line in out.buffer.getvalue().splitlines()]
    assert [(m["stream"], m.get("version"), m["record"]["n"]) for m in lines] == [
        ("leads", None, 1),
        ("orders", None, 2),
        ("orders", 7, 3),
        ("leads", None, 4),
    ]
