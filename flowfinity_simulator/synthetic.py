"""A large, read-only Lead Registration history generated from record indexes, for benchmarks.

Nothing is held in memory per record: record i has RecordID i+1 and submission id first_id+i,
and its JSON is rendered from a template while the response is written, so a million-record
first sync costs the simulator no more memory than a ten-record one. Because the ids are an
arithmetic sequence, the cursor filter is a subtraction rather than a scan.
"""

from __future__ import annotations

import json
import typing as t

INDUSTRIES = ("Energy", "Retail", "Finance", "Healthcare", "Manufacturing")
RATINGS = ("Hot", "Warm", "Cold")

# Positional %-formatting: about twice as fast as a dict template, which matters at 1M rows.
_TEMPLATE = (
    '{"BusinessPhone": "555-%04d", "CallbackRequested": {"Selection": ["Yes"]}, '
    '"Company": "Company %d", "EmailAddress": "lead%d@example.com", '
    '"EmployeeCount": "%d", "FirstContact": "2020-09-%02dT00:00:00.000", '
    '"FirstName": "John", "Industry": {"Selection": "%s"}, "LastName": "Smith", '
    '"MobilePhone": "555-8888", "Probability": {"Selection": "50-80%%"}, '
    '"Rating": {"Selection": "%s"}, '
    '"Summary": "Interested in the product. Get in touch in 2 weeks.", '
    '"TotalValue": "%d", "RecordID": "%09d", "CreatedBy": "Mike Smith", '
    '"CreatedOn": "2020-09-%02dT04:37:30.000", "State": "Open", '
    '"lastSubmissionId": "%d"}'
)


class SyntheticRecords:
    """Records 0..count-1 of a synthetic view, addressable by submission id."""

    def __init__(self, count: int, first_id: int) -> None:
        self.count = count
        self.first_id = first_id

    def render(self, index: int) -> str:
        day = 1 + index % 28
        return _TEMPLATE % (
            index % 10_000,
            index % 997,
            index + 1,
            1 + index % 5000,
            day,
            INDUSTRIES[index % 5],
            RATINGS[index % 3],
            10 + index % 100_000,
            index + 1,
            day,
            self.first_id + index,
        )

    def first_index_after(self, after: int | None) -> int:
        """Index of the first record whose submission id is greater than `after`."""
        if after is None:
            return 0
        return min(max(after - self.first_id + 1, 0), self.count)

    def index_of(self, record_id: str) -> int | None:
        """The index of a synthetic RecordID, or None when it is not one of ours."""
        if not record_id.isdigit():
            return None
        index = int(record_id) - 1
        return index if 0 <= index < self.count else None

    def render_from(
        self, after: int | None, skip: t.AbstractSet[int] = frozenset(), *, reverse: bool = False
    ) -> t.Iterator[str]:
        """JSON text of each record after `after`; `skip` holds indexes superseded by writes."""
        indexes = range(self.first_index_after(after), self.count)
        if reverse:
            indexes = indexes[::-1]
        if not skip:
            render = self.render
            return map(render, indexes)
        return (self.render(i) for i in indexes if i not in skip)

    def iter_from(self, after: int | None) -> t.Iterator[dict[str, t.Any]]:
        return (json.loads(text) for text in self.render_from(after))

    def get(self, record_id: str) -> dict[str, t.Any] | None:
        index = self.index_of(record_id)
        return None if index is None else t.cast(dict, json.loads(self.render(index)))
