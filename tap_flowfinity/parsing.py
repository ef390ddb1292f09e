"""Incremental parsing of a view's response body.

A first sync asks for a view's whole history, which Flowfinity answers with one JSON array.
Parsing it as it arrives keeps memory flat and lets records (and bookmarks) flow before the
body ends, so an interrupted first sync resumes near where it stopped instead of from zero.
"""

from __future__ import annotations

import codecs
import json
import re
import typing as t
from decimal import Decimal

import msgspec
import requests

from tap_flowfinity.errors import MalformedResponse, TruncatedResponse

# Bytes read off the socket at a time: what a dropped connection can cost (a read that fails
# is lost whole, and re-read from the last record emitted), and what a slow server's records
# wait for before they are parsed.
CHUNK_SIZE = 64 * 1024

# What a dropped connection or a stalled server looks like while the body is being read.
BODY_READ_ERRORS = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ContentDecodingError,
    ConnectionError,
)


class _BodyReader:
    """The streamed response body chunk by chunk; a dropped connection is a truncation."""

    def __init__(self, response: requests.Response, view: str) -> None:
        self._chunks: t.Iterator[bytes] = response.iter_content(chunk_size=CHUNK_SIZE)
        self._pending = b""
        self._view = view
        self.at_end = False

    def _next_chunk(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            self.at_end = True
            return b""
        except BODY_READ_ERRORS as exc:
            raise TruncatedResponse(
                f"view {self._view!r}: the connection failed while reading the response "
                f"({type(exc).__name__})"
            ) from None

    def skip_byte_order_mark(self) -> None:
        """Drop a leading UTF-8 byte-order mark (common in .NET JSON output)."""
        while len(self._pending) < len(codecs.BOM_UTF8) and not self.at_end:
            self._pending += self._next_chunk()
        if self._pending.startswith(codecs.BOM_UTF8):
            self._pending = self._pending[len(codecs.BOM_UTF8) :]

    def first_significant_byte(self) -> bytes:
        """Return the first non-whitespace byte without consuming it (b"" for an empty body)."""
        while True:
            stripped = self._pending.lstrip()
            if stripped:
                self._pending = stripped
                return stripped[:1]
            if self.at_end:
                return b""
            self._pending = self._next_chunk()

    def read(self) -> bytes:
        """The bytes buffered by `first_significant_byte`, then the next chunk; b"" at the end."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        while not self.at_end:
            chunk = self._next_chunk()
            if chunk:
                return chunk
        return b""


def _reject_constant(name: str) -> t.NoReturn:
    raise ValueError(f"{name} is not a JSON number")


# The standard library's C scanner decodes one value at a time from a text buffer, which is
# all an incremental reader of one big array needs, and builds each record ~1.5x faster
# than ijson did. Non-integers become Decimal (exact); NaN and Infinity are refused.
_decode_value = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant).raw_decode
# msgspec decodes a run of whole records ~2.4x faster than the scanner does one by one, and
# to the same values (Decimal for non-integers; NaN, Infinity, control characters, leading
# zeros refused alike). What it refuses that the scanner takes (a lone surrogate escape) or
# anything else it fails on goes to the scanner, whose values and errors stand.
_decode_run = msgspec.json.Decoder(float_hook=Decimal).decode
_RUN_ERRORS = (msgspec.DecodeError, RecursionError)
# A record's opening: "{", whitespace, and its first key. Every record of a view starts with
# the same text (the view's columns, in order), and outside a record it can only open an
# object (in a string, '"' is escaped): the next record's opening marks where a record ends.
_OPENING = re.compile(r'\{[ \t\n\r]*"(?:[^"\\]|\\.)*"')
# Runs that failed in a row after which a response is read record by record to its end.
_RUN_FAILURES_TOLERATED = 4
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_WHITESPACE_CHARS = " \t\n\r"
_SEPARATOR = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")
# A value cut off by the end of the buffer fails within a few characters of that end (a
# literal, number or escape cut short) or as an unterminated string; an error further back
# is a syntax error, however much of the body follows.
_CUT_TOKEN_CHARS = 8
# Characters left in the buffer below which it is rebased at the cursor (see _records).
_REBASE_BELOW = 4096
# What can be left at the point of failure when the body itself was cut there: nothing,
# part of true/false/null, of a number, or of an escape sequence.
_CUT_TAIL = re.compile(
    r"(?:t(?:r(?:u)?)?|f(?:a(?:l(?:s)?)?)?|n(?:u(?:l)?)?"
    r"|-?[0-9]*(?:\.[0-9]*)?(?:[eE][-+]?[0-9]*)?"
    r"|\\|\\?u[0-9a-fA-F]{0,4})[ \t\n\r]*"  # the scanner points into an escape at its u
)


class _ArrayScanner:
    """Yields the records of the body's JSON array, holding about one chunk and one record."""

    def __init__(self, reader: _BodyReader, view: str) -> None:
        self._reader = reader
        self._view = view
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._text = ""
        self._pos = 0
        self._refills = 0  # how often `_more` added to the buffer
        self._run_failed = False

    def __iter__(self) -> t.Iterator[dict[str, t.Any]]:
        if self._next_significant() != "[":  # iter_records checked the first byte
            raise self._malformed("the response is not a JSON array")
        self._pos += 1
        if self._next_significant() == "]":
            self._pos += 1
        else:
            yield from self._records()
        if self._next_significant():
            raise self._malformed("the response is not valid JSON (data after the array)")

    def _records(self) -> t.Iterator[dict[str, t.Any]]:
        """The array's items; the cursor is on the first. The loop runs per record: kept tight.

        The records complete in the buffer are decoded as one run where possible (see
        `_take_run`); the rest, and any run that fails, one by one by the scanner.
        """
        decode, separator, opening_at = _decode_value, _SEPARATOR.match, _OPENING.match
        opening: str | None = None  # the records' opening, once known
        runs_failed = 0
        no_run_until = -1  # no run is tried again until the buffer is refilled after this
        while True:
            if opening is not None and self._refills > no_run_until:
                run = self._take_run(opening)
                if run is not None:
                    runs_failed = 0
                    yield from run
                    continue
                # Nothing more to take as a run in this buffer; a failed run is read by the
                # scanner, which yields the same records and raises the same errors.
                no_run_until = self._refills
                if self._run_failed:
                    runs_failed += 1
                    if runs_failed >= _RUN_FAILURES_TOLERATED:
                        opening = None
            text, pos = self._text, self._pos
            if len(text) - pos < _REBASE_BELOW:
                # The buffer's last records: the one cut by its end fails, and the scanner's
                # error counts the lines of everything before it. Start the buffer here.
                text = self._text = text[pos:]
                pos = self._pos = 0
            start = pos
            try:
                record, pos = decode(text, pos)
            except (ValueError, RecursionError) as exc:  # cut by the buffer end, or bad
                record = self._recover(exc)
                text, pos = self._text, self._pos
                start = -1
            if type(record) is not dict:
                raise self._malformed(
                    f"the JSON array holds a {type(record).__name__}, not a record object"
                )
            if opening is None and start >= 0 and runs_failed < _RUN_FAILURES_TOLERATED:
                opened = opening_at(text, start)
                opening = None if opened is None else opened.group()
            yield record
            # The common case: ", " and the next record already in the buffer.
            after = separator(text, pos)
            if after is not None and after.end() < len(text):
                self._pos = after.end()
                continue
            self._pos = pos
            found = self._next_significant()
            if found == "]":
                self._pos += 1
                return
            if found != ",":
                if not found:
                    raise self._truncated()
                raise self._malformed(
                    f"the response is not valid JSON (',' or ']' expected, found {found!r})"
                )
            self._pos += 1
            if not self._next_significant():
                raise self._truncated()

    def _take_run(self, opening: str) -> list[dict[str, t.Any]] | None:
        """The buffer's whole records from the cursor on, decoded in one call.

        The cursor moves to the last record opening in the buffer. None: no such run
        (`_run_failed` says whether one was found but failed to decode as records).

        An opening after a comma is taken for the next record (one after a colon is a nested
        object). The text from the cursor (on a "{") to that comma decodes as a JSON array's
        items only when it is exactly a sequence of whole values: an opening inside a record
        (a nested object in an array) leaves a value unclosed, and the run fails. So a run's
        records are those the scanner would read, in order, and nothing else.
        """
        self._run_failed = False
        text, pos = self._text, self._pos
        if text[pos] != "{":  # e.g. a second comma: the scanner's error to raise
            self._run_failed = True
            return None
        end = len(text)
        while True:
            cut = text.rfind(opening, pos + 1, end)
            if cut < 0:
                return None
            comma = cut - 1
            while text[comma] in _WHITESPACE_CHARS:
                comma -= 1
            if text[comma] == ",":
                break
            end = cut
        try:
            run = _decode_run("[" + text[pos:comma] + "]")
        except _RUN_ERRORS:
            self._run_failed = True
            return None
        if not all(type(record) is dict for record in run):
            self._run_failed = True  # the scanner names what the array holds
            return None
        self._pos = cut
        return t.cast(list[dict[str, t.Any]], run)

    def _recover(self, failure: Exception) -> t.Any:
        """The value at the cursor after its decoding failed with `failure`.

        Reads on while the buffer's end may have cut the value; otherwise the body itself is
        cut (TruncatedResponse) or malformed.
        """
        while True:
            if not isinstance(failure, json.JSONDecodeError):  # NaN, a huge number, nesting
                raise self._malformed(f"the response holds an invalid value ({failure})")
            unterminated = failure.msg.startswith("Unterminated string")
            if not unterminated and failure.pos < len(self._text) - _CUT_TOKEN_CHARS:
                raise self._malformed(f"the response is not valid JSON ({failure})")
            # Read at least as much again as is pending, so a large record is scanned
            # a few times, not once per chunk.
            failed_at = failure.pos - self._pos  # the buffer is rebased from the cursor
            if not self._more(at_least=len(self._text) - self._pos):
                if unterminated or _CUT_TAIL.fullmatch(self._text, self._pos + failed_at):
                    raise self._truncated()
                raise self._malformed(f"the response is not valid JSON ({failure})")
            try:
                value, self._pos = _decode_value(self._text, self._pos)
            except (ValueError, RecursionError) as exc:
                failure = exc
                continue
            return value

    def _next_significant(self) -> str:
        """The next non-whitespace character, not consumed ("" at the end of the body)."""
        while True:
            self._pos = t.cast(re.Match[str], _WHITESPACE.match(self._text, self._pos)).end()
            if self._pos < len(self._text):
                return self._text[self._pos]
            if not self._more():
                return ""

    def _more(self, at_least: int = 1) -> bool:
        """Add at least `at_least` more characters of the body to the buffer; False at its end.

        The buffer keeps only what is not consumed yet.
        """
        text = self._text[self._pos :]
        added = 0
        while added < max(at_least, 1):
            chunk = self._reader.read()
            try:
                decoded = self._utf8.decode(chunk, final=not chunk)
            except UnicodeDecodeError:
                if not chunk:  # the body ended inside a character
                    raise self._truncated() from None
                raise self._malformed("the response is not valid UTF-8") from None
            text += decoded
            added += len(decoded)
            if not chunk:
                break
        self._text, self._pos = text, 0
        self._refills += 1
        return added > 0

    def _truncated(self) -> TruncatedResponse:
        return TruncatedResponse(
            f"view {self._view!r}: the response ended in the middle of the JSON array"
        )

    def _malformed(self, problem: str) -> MalformedResponse:
        return MalformedResponse(self._view, problem, _FIX_URL)


def iter_records(
    response: requests.Response, view: str
) -> t.Generator[dict[str, t.Any], None, None]:
    """Yield each record of a view's JSON array as soon as it is complete.

    Raises:
        MalformedResponse: the body is not a JSON array of objects (an HTML login page, an
            error object, invalid JSON). Retrying would not help.
        TruncatedResponse: the body ended early. Every record yielded before was complete.

    """
    reader = _BodyReader(response, view)
    reader.skip_byte_order_mark()
    first = reader.first_significant_byte()
    if not first:
        if _declares_complete_body(response):
            return  # "nothing new" as an empty body: Content-Length 0 or an empty chunked body
        raise TruncatedResponse(f"view {view!r}: the response body was empty")
    if first == b"n" and _rest_is_null(reader):
        return  # "nothing new" as the JSON literal null
    if first != b"[":
        raise MalformedResponse(view, _describe_unexpected_body(first, response), _FIX_URL)
    yield from _ArrayScanner(reader, view)


def _declares_complete_body(response: requests.Response) -> bool:
    """Whether the framing says the body is whole (a body cut by a closed connection is not).

    An empty body read to its declared end (`Content-Length: 0`, or a chunked body with its
    last chunk) is an answer; without a length, an empty body may be a connection that
    died before the first byte, and is retried.
    """
    headers = response.headers
    if headers.get("Content-Length", "").strip() == "0":
        return True
    return "chunked" in headers.get("Transfer-Encoding", "").lower()


def _rest_is_null(reader: _BodyReader) -> bool:
    """Whether the whole body is `null` (read as far as it takes to tell)."""
    text = b""
    while len(text) <= len(b"null") + 64:
        chunk = reader.read()
        if not chunk:
            return text.strip() == b"null"
        text += chunk
    return False


_FIX_URL = (
    "check that views[].url is the view's REST URL from the App Editor "
    "(Configure > Integration > REST Integration > Details) and that REST access is enabled"
)


def _describe_unexpected_body(first: bytes, response: requests.Response) -> str:
    content_type = response.headers.get("Content-Type", "no Content-Type")
    if first == b"<":
        return (
            f"HTTP {response.status_code} returned an HTML page ({content_type}) instead of "
            "JSON, e.g. a login or proxy page"
        )
    if first == b"{":
        return f"HTTP {response.status_code} returned a JSON object, not the array of records"
    return f"HTTP {response.status_code} returned {content_type} that is not a JSON array"
