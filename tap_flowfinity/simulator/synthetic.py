"""A large, read-only Lead Registration history generated from record indexes, for benchmarks.

Nothing is held in memory per record: record i has RecordID i+1 and submission id first_id+i,
and its JSON is rendered from a template as the response is written, so a million-record
first sync costs the simulator no more memory than a ten-record one.
"""

from __future__ import annotations

import json
import typing as t

INDUSTRIES = ("Energy", "Retail", "Finance", "Healthcare", "Manufacturing")
RATINGS = ("Hot", "Warm", "Cold")

_TEMPLATE = (
    '{"BusinessPhone": "555-%(phone)04d", "CallbackRequested": {"Selection": ["Yes"]}, '
    '"Company": "Company %(company)d", "EmailAddress": "lead%(number)d@example.com", '
    '"EmployeeCount": "%(employees)d", "FirstContact": "2020-09-%(day)02dT00:00:00.000", '
    '"FirstName": "John", "Industry": {"Selection": "%(industry)s"}, "LastName": "Smith", '
    '"MobilePhone": "555-8888", "Probability": {"Selection": "50-80%%"}, '
    '"Rating": {"Selection": "%(rating)s"}, '
    '"Summary": "Interested in the product. Get in touch in 2 weeks.", '
    '"TotalValue": "%(value)d", "RecordID": "%(number)09d", "CreatedBy": "Mike Smith", '
    '"CreatedOn": "2020-09-%(day)02dT04:37:30.000", "State": "Open", '
    '"lastSubmissionId": "%(submission)d"}'
)


class SyntheticRecords:
    """Records 0..count-1 of a synthetic view, addressable by submission id."""

    def __init__(self, count: int, first_id: int) -> None:
        self.count = count
        self.first_id = first_id

    @property
    def last_id(self) -> int:
        return self.first_id + self.count - 1

    def _render(self, index: int) -> str:
        return _TEMPLATE % {
            "number": index + 1,
            "phone": index % 10_000,
            "company": index % 997,
            "employees": 1 + index % 5000,
            "day": 1 + index % 28,
            "industry": INDUSTRIES[index % 5],
            "rating": RATINGS[index % 3],
            "value": 10 + index % 100_000,
            "submission": self.first_id + index,
        }

    def first_index_after(self, after: int | None) -> int:
        """Index of the first record whose submission id is greater than `after`."""
        if after is None:
            return 0
        return min(max(after - self.first_id + 1, 0), self.count)

    def render_from(self, after: int | None, skip: t.Container[str]) -> t.Iterator[tuple[int, str]]:
        """(submission id, JSON text) of each record after `after`, skipping updated RecordIDs."""
        for index in range(self.first_index_after(after), self.count):
            if f"{index + 1:09d}" in skip:
                continue
            yield self.first_id + index, self._render(index)

    def iter_from(self, after: int | None) -> t.Iterator[dict[str, t.Any]]:
        for index in range(self.first_index_after(after), self.count):
            yield json.loads(self._render(index))

    def get(self, record_id: str) -> dict[str, t.Any] | None:
        index = int(record_id) - 1
        if 0 <= index < self.count:
            return t.cast(dict, json.loads(self._render(index)))
        return None
