"""Incremental parsing of a view's response body.

A first sync asks for a view's whole history, which Flowfinity answers with one JSON array.
Parsing it as it arrives keeps memory flat and lets records (and bookmarks) flow before the
body ends, so an interrupted first sync resumes near where it stopped instead of from zero.
"""

from __future__ import annotations

import typing as t

import ijson
import requests

from tap_flowfinity.errors import MalformedResponse, TruncatedResponse

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
    """A file-like view of a streamed response for ijson, that tells a cut from bad JSON."""

    def __init__(self, response: requests.Response, view: str) -> None:
        self._chunks = response.iter_content(chunk_size=CHUNK_SIZE)
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

    def first_significant_byte(self) -> bytes:
        """Return the first non-whitespace byte without consuming it (b"" for an empty body)."""
        while not self.at_end:
            stripped = self._pending.lstrip()
            if stripped:
                self._pending = stripped
                return stripped[:1]
            self._pending = self._next_chunk()
        return b""

    def read(self, size: int = -1) -> bytes:
        """Hand ijson the buffered bytes first, then the next chunk off the socket."""
        if size == 0:  # ijson probes the stream's type with read(0)
            return b""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        return b"" if self.at_end else self._next_chunk()


def iter_records(response: requests.Response, view: str) -> t.Iterator[dict[str, t.Any]]:
    """Yield each record of a view's JSON array as soon as it is complete.

    Raises:
        MalformedResponse: the body is not a JSON array of objects (an HTML login page, an
            error object, invalid JSON). Retrying would not help.
        TruncatedResponse: the body ended early. Every record yielded before was complete.

    """
    reader = _BodyReader(response, view)
    first = reader.first_significant_byte()
    if not first:
        raise TruncatedResponse(f"view {view!r}: the response body was empty")
    if first != b"[":
        raise MalformedResponse(view, _describe_unexpected_body(first, response), _FIX_URL)
    try:
        for item in ijson.items(reader, "item"):
            if not isinstance(item, dict):
                raise MalformedResponse(
                    view,
                    f"the JSON array holds a {type(item).__name__}, not a record object",
                    _FIX_URL,
                )
            yield item
    except ijson.IncompleteJSONError as exc:
        if reader.at_end and "premature EOF" in str(exc):
            raise TruncatedResponse(
                f"view {view!r}: the response ended in the middle of the JSON array"
            ) from None
        raise MalformedResponse(
            view, "the response is not valid JSON (" + _first_line(exc) + ")", _FIX_URL
        ) from None


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


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
