"""How a real Flowfinity site may differ from the simulator's defaults, one switch per point.

Flowfinity's public documentation leaves these open, and each decides whether a first run
against a real site works. Every switch defaults to the simulator's reading of the
documentation; turning one on serves the plausible alternative, so a client can be shown to
cope with it. The same JSON shape works over the control API (GET/POST /_sim/variants) and
as `flowfinity-simulator` flags.

- cursor_key, state_key: the keys the view sends the submission id and the workflow state
  under (Flowfinity's synchronization article writes both `lastSubmissionId` and
  `lastSubmissionID`). The data is the same; only the key in the JSON differs.
- records_per_submission: records created together share one submission id (a multi-record
  transaction, a view at sub-form level), so the view sends equal ids in a row.
- empty_answer: how "nothing new" looks: "array" (`[]`), "no_content" (204), "empty" (200
  with `Content-Length: 0`) or "null" (the JSON literal).
- bom: every JSON body starts with a UTF-8 byte-order mark (common in .NET output).
- strict_params: a repeated query parameter is joined as ASP.NET does (`0,5000`), so a cursor
  parameter sent twice is not a number and gets a 400.
- auth_scheme: the scheme the site asks for in its 401 challenge; anything but "Basic" (e.g.
  NTLM, Negotiate, Bearer) refuses every Basic request, as an IIS site with Windows
  authentication would.
- method: the HTTP method views answer ("GET"); any other gets 405 with an Allow header.
- content_type: the Content-Type of a view's JSON answer.
- framing: how a view answer is delimited ("auto": the simulator's --framing).
- headers: extra response headers of a view answer (a replayed capture's, say).
- delete_operation: what the Delete operation (and the control API's delete) does: "state"
  (a transition to the state Deleted: the record stays in the view, flagged) or "purge" (the
  record is removed physically and never shows again, as on a site where Delete really
  deletes; the change feed carries no trace of it).
"""

from __future__ import annotations

import typing as t
from dataclasses import asdict, dataclass, field, fields

DEFAULT_CURSOR_KEY = "lastSubmissionId"
DEFAULT_STATE_KEY = "State"
EMPTY_ANSWERS = frozenset({"array", "no_content", "empty", "null"})
METHODS = frozenset({"GET", "POST"})
FRAMINGS = frozenset({"auto", "length", "chunked", "close"})
DELETE_OPERATIONS = frozenset({"state", "purge"})


@dataclass(frozen=True)
class Variants:
    """One site's answers to the points the documentation leaves open."""

    cursor_key: str = DEFAULT_CURSOR_KEY
    state_key: str = DEFAULT_STATE_KEY
    records_per_submission: int = 1
    empty_answer: str = "array"
    bom: bool = False
    strict_params: bool = False
    auth_scheme: str = "Basic"
    method: str = "GET"
    content_type: str = "application/json; charset=utf-8"
    framing: str = "auto"
    headers: dict[str, str] = field(default_factory=dict)
    delete_operation: str = "state"

    def __post_init__(self) -> None:
        if self.empty_answer not in EMPTY_ANSWERS:
            raise ValueError(
                f"empty_answer must be one of {sorted(EMPTY_ANSWERS)}, not {self.empty_answer!r}"
            )
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, not {self.method!r}")
        if self.framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {sorted(FRAMINGS)}, not {self.framing!r}")
        if self.delete_operation not in DELETE_OPERATIONS:
            raise ValueError(
                f"delete_operation must be one of {sorted(DELETE_OPERATIONS)}, "
                f"not {self.delete_operation!r}"
            )
        if self.records_per_submission < 1:
            raise ValueError("records_per_submission must be at least 1")
        if not self.cursor_key or not self.state_key or not self.auth_scheme.strip():
            raise ValueError("cursor_key, state_key and auth_scheme must not be empty")

    @classmethod
    def from_json(cls, data: t.Mapping[str, t.Any]) -> Variants:
        """Build from JSON; unknown keys are an error, not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown variants {sorted(unknown)}; variants: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> dict[str, t.Any]:
        return asdict(self)

    def updated(self, changes: t.Mapping[str, t.Any]) -> Variants:
        """These variants with some switched (validated like `from_json`)."""
        return Variants.from_json({**self.to_json(), **changes})

    @property
    def renames_keys(self) -> bool:
        return self.cursor_key != DEFAULT_CURSOR_KEY or self.state_key != DEFAULT_STATE_KEY

    def rename_record(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """The record with the site's keys, in the same key order."""
        names = {DEFAULT_CURSOR_KEY: self.cursor_key, DEFAULT_STATE_KEY: self.state_key}
        return {names.get(key, key): value for key, value in record.items()}

    def rename_text(self, text: str) -> str:
        """A record's JSON text (as json.dumps writes it) with the site's keys."""
        if self.cursor_key != DEFAULT_CURSOR_KEY:
            text = text.replace(f'"{DEFAULT_CURSOR_KEY}": ', f'"{self.cursor_key}": ', 1)
        if self.state_key != DEFAULT_STATE_KEY:
            text = text.replace(f'"{DEFAULT_STATE_KEY}": ', f'"{self.state_key}": ', 1)
        return text

    def canonical_record(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """The record with the simulator's own keys (the inverse of `rename_record`)."""
        names = {self.cursor_key: DEFAULT_CURSOR_KEY, self.state_key: DEFAULT_STATE_KEY}
        return {names.get(key, key): value for key, value in record.items()}

    def accepts_basic(self) -> bool:
        return self.auth_scheme.strip().lower() == "basic"
