"""`tap-flowfinity --capture FILE`: record what a real site's views send, to replay offline.

For each configured view, the capture reads the first `--capture-records` records the way a
sync does (from `start_last_submission_id` when set, else from the start; then again from
the largest id seen), stops there, and asks once more from the largest id it saw, which on
a view it read to the end shows how "nothing new" looks on that site. It writes one JSON
file that `flowfinity-simulator --replay FILE` serves as a site, so a user's view can be
reproduced in a test without access to it.

By default values are masked so the file can be attached to a bug report: text keeps its
shape (digits stay digits, letters stay letters of the same case, everything else stays), a
date-time stays a valid date-time (its date shifted), numbers keep their digit count, and
field names, key order and casing, `{"Selection": ...}` structure, nulls versus "", RecordID,
the cursor and the state names are kept. Equal values mask alike within one capture (a key
drawn at random per capture, never stored). `--capture-verbatim` keeps every value.

The file never holds the password, the Authorization header or cookies. Its format:

    {"format": "tap-flowfinity capture 1", "masked": true, "views": [{
        "name", "url" (no user info; host masked when masked), "cursor_field",
        "cursor_key" (the key records carry it under), "cursor_parameter", "state_field",
        "state_key", "empty_answer" ("array" | "no_content" | "empty" | "null" | null: not
        seen), "cap" (records per answer the site showed, or null),
        "requests": [{"method", "url", "status", "headers", "framing" ("length" | "chunked"
            | "close"), "bom", "records" (read), "new" (not read before), "complete"}],
        "records": [... as sent, masked ...]}]}
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import itertools
import logging
import re
import secrets
import typing as t
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import msgspec
import requests

from tap_flowfinity.client import ViewClient
from tap_flowfinity.errors import FlowfinityError

if t.TYPE_CHECKING:
    from tap_flowfinity.settings import TapSettings, ViewSettings

CAPTURE_FORMAT = "tap-flowfinity capture 1"
DEFAULT_CAPTURE_RECORDS = 200
MASKED_HOST = "flowfinity.invalid"
# Never written to a capture: credentials and session state.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "set-cookie2"}
)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})((?:[T ][0-9:.]*)?(?:Z|[+-]\d{2}:?\d{2})?)")
_DAYS = 3 * 365


class Masker:
    """Masks values so that they keep their shape; equal values mask alike."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def value(self, value: t.Any) -> t.Any:
        """The masked value: same type and structure, none of the content."""
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int):
            masked = self._digits(str(abs(value)), str(value))
            return -int(masked) if value < 0 else int(masked)
        if isinstance(value, (Decimal, float)):
            text = format(value, "f") if isinstance(value, Decimal) else repr(value)
            return Decimal(self._digits(text, text))
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        return self.text(str(value))

    def text(self, text: str) -> str:
        """Digits stay digits, letters letters (same case); a date-time stays one."""
        if not text:
            return text
        found = _DATE.fullmatch(text)
        if found:
            shifted = self._shift_date(found, text)
            if shifted is not None:
                return shifted
        return self._digits(text, text)

    def _stream(self, text: str) -> t.Iterator[int]:
        """Pseudo-random bytes determined by the capture's key and the value."""
        counter = 0
        while True:
            block = hmac.new(self._key, f"{counter}:{text}".encode(), hashlib.sha256).digest()
            yield from block
            counter += 1

    def _digits(self, text: str, seed: str) -> str:
        rand = self._stream(seed)
        out = []
        for index, char in enumerate(text):
            if char.isdigit():
                low = 1 if index == 0 and char != "0" else 0  # "25" never becomes "05"
                out.append(str(low + next(rand) % (10 - low)))
            elif char.isalpha():
                letter = chr(ord("a") + next(rand) % 26)
                out.append(letter.upper() if char.isupper() else letter)
            else:
                out.append(char)
        return "".join(out)

    def _shift_date(self, found: re.Match[str], text: str) -> str | None:
        try:
            day = date(int(found[1]), int(found[2]), int(found[3]))
        except ValueError:
            return None
        offset = int.from_bytes(bytes(next(self._stream(text)) for _ in range(4)), "big")
        shifted = day + timedelta(days=offset % (2 * _DAYS) - _DAYS)
        return shifted.isoformat() + found[4]


@dataclass
class _Head:
    """Wraps a response's raw stream to note the first bytes the body started with."""

    raw: t.Any
    head: bytes = b""

    def stream(self, *args: t.Any, **kwargs: t.Any) -> t.Iterator[bytes]:
        for chunk in self.raw.stream(*args, **kwargs):
            if len(self.head) < 16:
                self.head += chunk[: 16 - len(self.head)]
            yield chunk

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self.raw, name)


@dataclass
class ViewCapture:
    """What one view sent, as written to the capture file."""

    view: ViewSettings
    masked: bool
    requests: list[dict[str, t.Any]] = field(default_factory=list)
    records: list[dict[str, t.Any]] = field(default_factory=list)
    empty_answer: str | None = None
    cap: int | None = None

    def to_json(self, masker: Masker, client: ViewClient) -> dict[str, t.Any]:
        """The view's entry in the capture file (masked unless verbatim)."""
        view = self.view
        renamed = client.renamed_keys()
        cursor_key = renamed.get(view.cursor_field, view.cursor_field)
        state_key = renamed.get(view.state_field, view.state_field)
        kept = {"RecordID", cursor_key, state_key}
        records = self.records
        if self.masked:
            records = [
                {k: v if k in kept else masker.value(v) for k, v in record.items()}
                for record in records
            ]
        return {
            "name": view.name,
            "url": self._url(view.url),
            "cursor_field": view.cursor_field,
            "cursor_key": cursor_key,
            "cursor_parameter": view.cursor_parameter,
            "state_field": view.state_field,
            "state_key": state_key,
            "empty_answer": self.empty_answer,
            "cap": self.cap,
            "requests": [{**entry, "url": self._url(entry["url"])} for entry in self.requests],
            "records": records,
        }

    def _url(self, url: str) -> str:
        parts = urlsplit(url)
        host = MASKED_HOST if self.masked else parts.hostname or ""
        port = f":{parts.port}" if parts.port and not self.masked else ""
        return urlunsplit((parts.scheme, host + port, parts.path, parts.query, ""))


def capture_view(client: ViewClient, start: int | None, limit: int, *, masked: bool) -> ViewCapture:
    """Read up to `limit` records of the view as a sync would, then the answer after them.

    Like a sync, once records have shared an id it asks from one below the last id (a cap
    may have cut the group) and keeps each (RecordID, id) once.
    """
    capture = ViewCapture(client.view, masked)
    seen: set[tuple[t.Any, int]] = set()
    ask, last, groups = start, None, False
    while True:
        new, complete = _answer(client, ask, limit - len(capture.records), capture, seen)
        for record in new:
            cursor = client.cursor_of(dict(record))
            groups = groups or cursor == last
            last = cursor
        capture.records.extend(new)
        if not new or not complete:
            break
        ask = last - 1 if groups and last is not None else last
    if capture.empty_answer is None and last is not None:
        _answer(client, last, 0, capture, seen)  # one look at the answer after the last id
    # An answer that ended by itself although the next brought new records was capped.
    caps = {
        a["records"]
        for a, b in itertools.pairwise(capture.requests)
        if a["complete"] and a["records"] and b["new"]
    }
    capture.cap = caps.pop() if len(caps) == 1 else None
    return capture


def _answer(
    client: ViewClient,
    cursor: int | None,
    limit: int,
    capture: ViewCapture,
    seen: set[tuple[t.Any, int]],
) -> tuple[list[dict[str, t.Any]], bool]:
    """One request: up to `limit` records not `seen` yet, and whether its answer ended."""
    response = client.request(cursor)
    head = _Head(response.raw)
    response.raw = head
    entry = _describe(response)
    capture.requests.append(entry)
    error = client.status_error(response)
    if error is not None:
        response.close()
        raise error
    records: list[dict[str, t.Any]] = []
    iterator = client.raw_records(response)
    complete, read = True, 0
    try:
        for record in iterator:
            read += 1
            pair = (record.get("RecordID"), client.cursor_of(dict(record)))
            if pair in seen:
                continue
            if len(records) >= limit:
                complete = False
                break
            seen.add(pair)
            records.append(record)
    finally:
        iterator.close()
    entry["bom"] = head.head.startswith(codecs.BOM_UTF8)
    entry["records"] = read
    entry["new"] = len(records)
    entry["complete"] = complete
    if complete and not read:
        capture.empty_answer = _empty_form(response, head.head)
    return records, complete


def _describe(response: requests.Response) -> dict[str, t.Any]:
    headers = {k: v for k, v in response.headers.items() if k.lower() not in SECRET_HEADERS}
    if "chunked" in response.headers.get("Transfer-Encoding", "").lower():
        framing = "chunked"
    elif "Content-Length" in response.headers:
        framing = "length"
    else:
        framing = "close"
    return {
        "method": response.request.method,
        "url": response.request.url,
        "status": response.status_code,
        "headers": headers,
        "framing": framing,
    }


def _empty_form(response: requests.Response, head: bytes) -> str:
    if response.status_code == 204:
        return "no_content"
    body = head.removeprefix(codecs.BOM_UTF8).strip()
    if not body:
        return "empty"
    return "null" if body.startswith(b"null") else "array"


def capture_site(
    settings: TapSettings,
    path: Path,
    *,
    records: int = DEFAULT_CAPTURE_RECORDS,
    masked: bool = True,
    logger: logging.Logger,
) -> list[str]:
    """Capture every view into `path`; returns one summary line per view."""
    masker = Masker()
    views_json = []
    lines = []
    for view in settings.views:
        client = ViewClient.for_settings(settings, view, logger)
        try:
            capture = capture_view(
                client, settings.start_last_submission_id, records, masked=masked
            )
            views_json.append(capture.to_json(masker, client))
        except requests.exceptions.RequestException as exc:
            raise FlowfinityError(
                view.name, f"the capture could not reach {client.where} ({type(exc).__name__})"
            ) from None
        finally:
            client.close()
        seen = capture.empty_answer or "not seen (the view has more records)"
        lines.append(
            f"view {view.name!r}: {len(capture.records)} records, {len(capture.requests)} "
            f"requests, empty answer: {seen}"
        )
    document = {"format": CAPTURE_FORMAT, "masked": masked, "views": views_json}
    encoded = msgspec.json.Encoder(decimal_format="number").encode(document)
    path.write_bytes(msgspec.json.format(encoded, indent=1) + b"\n")
    return lines
