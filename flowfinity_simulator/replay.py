"""Replay mode: serve the views of a capture file (`tap-flowfinity --capture`) as a site.

A capture holds, per view, the records a real site sent and how it framed its answers
(byte-order mark, the form of an empty answer, Content-Type and other headers, key casing,
a response cap it showed). Replayed, each view answers at its captured URL path with the
synchronization recipe (records after the cursor parameter, ascending by submission id,
at most the cap per answer) in the captured framing, so a user's site can be reproduced in
a test without access to it. The file format is documented in tap_flowfinity/capture.py.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from flowfinity_simulator.records import App, Store
from flowfinity_simulator.variants import DEFAULT_CURSOR_KEY, Variants

CAPTURE_FORMAT = "tap-flowfinity capture 1"
# Headers that describe one answer's framing or connection, not the site: never replayed.
NOT_REPLAYED = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"}
)


@dataclass(frozen=True)
class Capture:
    """A loaded capture file."""

    views: list[dict[str, t.Any]]

    @classmethod
    def load(cls, path: Path) -> Capture:
        """Read a capture; a file of another format is refused with the reason."""
        data = json.loads(Path(path).read_text(encoding="utf-8"), parse_float=Decimal)
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: t.Any) -> Capture:
        if not isinstance(data, dict) or data.get("format") != CAPTURE_FORMAT:
            raise ValueError(f"not a capture file (expected format {CAPTURE_FORMAT!r})")
        views = data.get("views")
        if not isinstance(views, list) or not views:
            raise ValueError("the capture holds no views")
        return cls(views=views)

    def load_into(self, store: Store) -> None:
        """One app per captured view, holding its records, answering as the site did."""
        largest = 0
        for view in self.views:
            variants = view_variants(view)
            app = App(
                view_key=str(view["name"]),
                name=str(view["name"]),
                view_name=str(view["name"]),
                fields=lambda number: {},
                path=urlsplit(str(view["url"])).path,
                variants=variants,
                cap=int(view.get("cap") or 0),
                exact_numbers=True,
            )
            store.add_app(app)
            for record in view.get("records") or []:
                row = variants.canonical_record(record)
                largest = max(largest, int(row[DEFAULT_CURSOR_KEY]))
                key, copy = str(row.get("RecordID")), 1
                while key in app.records:  # rows sharing a RecordID (a sub-form level view)
                    copy += 1
                    key = f"{row.get('RecordID')}#{copy}"
                app.records[key] = row
        store.advance_counter(max(largest - store.counter, 0))


def view_variants(view: t.Mapping[str, t.Any]) -> Variants:
    """How a captured view answered, as simulator variants."""
    answers = [a for a in view.get("requests") or [] if a.get("status") == 200]
    headers: dict[str, str] = {}
    content_type = "application/json; charset=utf-8"
    framing = "auto"
    if answers:
        for name, value in (answers[0].get("headers") or {}).items():
            if name.lower() == "content-type":
                content_type = str(value)
            elif name.lower() not in NOT_REPLAYED:
                headers[str(name)] = str(value)
        framing = str(answers[0].get("framing") or "auto")
    return Variants(
        cursor_key=str(view.get("cursor_key") or DEFAULT_CURSOR_KEY),
        state_key=str(view.get("state_key") or "State"),
        empty_answer=str(view.get("empty_answer") or "array"),
        bom=any(a.get("bom") for a in answers),
        content_type=content_type,
        headers=headers,
        framing=framing,
    )
