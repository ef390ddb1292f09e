"""Faults scripted per request, so tests can show what the tap does when Flowfinity misbehaves.

A fault applies to the next matching view request(s): `view` None matches every view,
`times` is how many requests it affects (None, or "always" in JSON, keeps it until cleared).
Several faults can apply to one request (e.g. a cap and a slow drip). Only authenticated,
well-formed view requests use faults up: a 401 leaves the script as it was. The same JSON shape
works over the control API: POST /_sim/faults with one object or a list, e.g.
`{"kind": "status", "status": 503, "headers": {"Retry-After": "1"}, "times": 2}`.

Kinds (and the fields each one reads):
- status: answer `status` with `headers` and `body` (text) or `body_base64` (bytes), e.g. an
  HTML login page with 200 and `"headers": {"Content-Type": "text/html"}`
- reset: abort the connection (RST) before any response byte
- drop_after_bytes: a normal response cut after `after_bytes` body bytes; `framing` picks
  "length" (Content-Length of the full body declared: the client sees a short read),
  "chunked" (no terminating chunk) or "close" (no length: EOF looks like a normal end)
- slow: sleep `delay` seconds before the headers, and `chunk_delay` between body chunks of
  `chunk_bytes` (default 256 when dripping)
- body: answer `status` (200) with `body` / `body_base64` as `Content-Type` `content_type`
  (application/json): malformed JSON, an object, records without a cursor ...
- unsorted: serve the records out of order; `order` is "descending", "swap_first" (the first
  two swapped) or "swap_last" (the last two swapped, so the disorder comes late)
- ignore_cursor: the view ignores PreviousLastSubmissionId (a view without the filter)
- cap: at most `cap` records per response
- late_visible: not a view fault but a write policy: every `every`-th write to the view is held
  (its submission id taken now) and becomes visible only after `reads` view reads; `times`
  counts held writes
"""

from __future__ import annotations

import base64
import threading
import typing as t
from dataclasses import asdict, dataclass, field, fields

KINDS = frozenset(
    {
        "status",
        "reset",
        "drop_after_bytes",
        "slow",
        "body",
        "unsorted",
        "ignore_cursor",
        "cap",
        "late_visible",
    }
)
FRAMINGS = frozenset({"length", "chunked", "close"})
ORDERS = frozenset({"descending", "swap_first", "swap_last"})


@dataclass
class Fault:
    kind: str
    view: str | None = None
    times: int | None = 1
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    body_base64: str | None = None
    content_type: str = "application/json"
    after_bytes: int = 0
    framing: str = "length"
    delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_bytes: int = 0
    cap: int = 0
    order: str = "descending"
    every: int = 1
    reads: int = 1
    _writes: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; kinds: {sorted(KINDS)}")
        if self.framing not in FRAMINGS:
            raise ValueError(f"unknown framing {self.framing!r}; framings: {sorted(FRAMINGS)}")
        if self.order not in ORDERS:
            raise ValueError(f"unknown order {self.order!r}; orders: {sorted(ORDERS)}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1, or None/'always' for until cleared")
        if self.every < 1 or self.reads < 1:
            raise ValueError("every and reads must be at least 1")

    @classmethod
    def from_json(cls, data: dict[str, t.Any]) -> Fault:
        """Build from the control API's JSON; unknown keys are an error, not silently ignored."""
        known = {f.name for f in fields(cls) if f.init}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}; fields: {sorted(known)}")
        data = dict(data)
        if data.get("times") == "always":
            data["times"] = None
        return cls(**data)

    def to_json(self) -> dict[str, t.Any]:
        data = asdict(self)
        data.pop("_writes", None)
        return data

    def body_bytes(self) -> bytes:
        if self.body_base64 is not None:
            return base64.b64decode(self.body_base64)
        return (self.body or "").encode()


class FaultBook:
    """The scripted faults, consumed as matching requests (or writes) arrive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, view_key: str) -> list[Fault]:
        """The faults for this view request; the ones with a count are used up."""
        with self._lock:
            chosen = [
                f for f in self._faults if f.kind != "late_visible" and f.view in (None, view_key)
            ]
            self._use(chosen)
            return chosen

    def hold_for_write(self, view_key: str) -> int | None:
        """How many view reads a write to this view stays invisible for, or None: visible now."""
        with self._lock:
            for fault in self._faults:
                if fault.kind != "late_visible" or fault.view not in (None, view_key):
                    continue
                fault._writes += 1
                if fault._writes % fault.every == 0:
                    self._use([fault])
                    return fault.reads
            return None

    def _use(self, used: list[Fault]) -> None:
        for fault in used:
            if fault.times is not None:
                fault.times -= 1
        self._faults = [f for f in self._faults if f.times is None or f.times > 0]
