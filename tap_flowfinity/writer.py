"""Singer messages on stdout: encoded by msgspec, written in blocks, in order.

`FlowfinityWriter` encodes with msgspec (falling back to the SDK's encoder for what msgspec
refuses, e.g. integers beyond 64 bits) and buffers RECORD lines; every other message flushes
the buffer first, so a STATE line never reaches the target ahead of the records before it,
and records never wait behind a STATE.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import time
import typing as t
import weakref
from datetime import datetime, timezone

import msgspec
from singer_sdk.singerlib import RecordMessage
from singer_sdk.singerlib.encoding.base import GenericSingerWriter
from singer_sdk.singerlib.json import serialize_json
from typing_extensions import override

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

_encoder = msgspec.json.Encoder(decimal_format="number")
_ENCODE_ERRORS = (msgspec.EncodeError, OverflowError, TypeError, ValueError, UnicodeError)
# Records are buffered up to this many bytes; every other message flushes them first.
_FLUSH_BYTES = 64 * 1024
# How long a RECORD's `time_extracted` is reused: the SDK stamps each record; a millisecond
# apart, records get one stamp.
_STAMP_SECONDS = 0.001
_clock = time.time


class FlowfinityWriter(GenericSingerWriter[bytes, "Message"]):
    """Singer messages as JSON lines on stdout, encoded by msgspec, written in blocks.

    The writer keeps its own buffer rather than relying on stdout's: under
    PYTHONUNBUFFERED (which schedulers and containers often set) stdout has none, and a
    write per record cost a quarter of a first sync's time.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        # Like stdout's own buffer, flushed when the interpreter exits (e.g. after `--test`
        # wrote its records); a tap that is gone by then has nothing left to write.
        atexit.register(_flush_if_alive, weakref.ref(self))
        self._head = self._tail = b""
        self._framed_stream: str | None = None
        self._framed_version: int | None = None
        self._stamped_at = 0.0

    @override
    def serialize_message(self, message: Message) -> bytes:
        """One message as a JSON line (without the newline)."""
        data = message.to_dict()
        try:
            return _encoder.encode(data)
        except _ENCODE_ERRORS:
            return serialize_json(data).encode()

    @override
    def write_message(self, message: Message) -> None:
        """Write a message; flush unless it is a RECORD that fits in the buffer."""
        self._write_line(self.format_message(message), is_record=isinstance(message, RecordMessage))

    def write_record(self, stream: str, record: dict[str, t.Any], version: int | None) -> None:
        """The line `write_message(RecordMessage(...))` writes, without building the message.

        Only the record is encoded per call: the bytes around it (stream, version, and
        `time_extracted`, renewed each millisecond) are reused.
        """
        now = _clock()
        if (
            now - self._stamped_at >= _STAMP_SECONDS
            or stream != self._framed_stream
            or version != self._framed_version
        ):
            self._frame(stream, version)
            self._stamped_at = now
        buffer = self._buffer
        start = len(buffer)
        buffer += self._head
        try:
            _encoder.encode_into(record, buffer, -1)  # appended in place, no copy
        except _ENCODE_ERRORS:
            del buffer[start + len(self._head) :]
            buffer += serialize_json(record).encode()
        buffer += self._tail
        if len(buffer) >= _FLUSH_BYTES:
            self.flush()

    def _frame(self, stream: str, version: int | None) -> None:
        # The SDK's key order: type, stream, record, version, time_extracted.
        self._head = b'{"type":"RECORD","stream":' + _encoder.encode(stream) + b',"record":'
        tail = b"" if version is None else b',"version":' + _encoder.encode(version)
        self._tail = (
            tail + b',"time_extracted":' + _encoder.encode(datetime.now(timezone.utc)) + b"}\n"
        )
        self._framed_stream, self._framed_version = stream, version

    def _write_line(self, line: bytes, *, is_record: bool) -> None:
        buffer = self._buffer
        buffer += line
        buffer += b"\n"
        if len(buffer) >= _FLUSH_BYTES or not is_record:
            self.flush()

    def flush(self) -> None:
        """Write out every buffered line (an unbuffered stdout may take a block in parts)."""
        out = sys.stdout.buffer
        pending = memoryview(self._buffer)
        try:
            while pending:
                written = out.write(pending)
                pending = pending[written or 0 :]
            out.flush()
        finally:
            pending.release()
        self._buffer.clear()


def _flush_if_alive(writer: weakref.ref[FlowfinityWriter]) -> None:
    alive = writer()
    if alive is not None:
        with contextlib.suppress(OSError, ValueError):  # stdout closed: the reader is gone
            alive.flush()
