"""Faults scripted per request, so tests can show what the tap does when Flowfinity misbehaves.

A fault applies to the next matching view request(s): `view` None matches every view,
`times` None keeps it until cleared. Several faults can apply to one request (e.g. a cap
and a slow drip). The same JSON shape works over the control API: POST /_sim/faults with
`{"kind": "status", "status": 503, "headers": {"Retry-After": "1"}, "times": 2}`.

Kinds:
- status: answer `status` with `headers` and `body` (e.g. an HTML login page with 200)
- reset: close the connection before any response
- drop_after_bytes: send a normal response but cut the connection after `after_bytes` body
  bytes; `content_length` True declares the full length first (the client sees a short read)
- slow: wait `delay` seconds before the headers, and `chunk_delay` between body chunks
- body: replace the body with `body` (malformed JSON, an object, records without cursor ...)
- unsorted: serve the records in descending order
- ignore_cursor: the view ignores PreviousLastSubmissionId (a view without the filter)
- cap: at most `cap` records per response
"""

from __future__ import annotations

import threading
import typing as t
from dataclasses import asdict, dataclass, field

KINDS = frozenset(
    {"status", "reset", "drop_after_bytes", "slow", "body", "unsorted", "ignore_cursor", "cap"}
)


@dataclass
class Fault:
    kind: str
    view: str | None = None
    times: int | None = 1
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    after_bytes: int = 0
    content_length: bool = True
    delay: float = 0.0
    chunk_delay: float = 0.0
    cap: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; kinds: {sorted(KINDS)}")

    @classmethod
    def from_json(cls, data: dict[str, t.Any]) -> Fault:
        return cls(**data)

    def to_json(self) -> dict[str, t.Any]:
        return asdict(self)


class FaultBook:
    """The scripted faults, consumed as matching requests arrive."""

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
        """The faults for this request; one-shot ones are used up."""
        with self._lock:
            chosen = [f for f in self._faults if f.view in (None, view_key)]
            for fault in chosen:
                if fault.times is not None:
                    fault.times -= 1
            self._faults = [f for f in self._faults if f.times is None or f.times > 0]
            return chosen
