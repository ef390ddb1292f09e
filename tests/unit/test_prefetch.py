"""The read-ahead on its own: order, bounds, errors and stopping, with views made in memory."""

from __future__ import annotations

import logging
import threading
import time
import typing as t

import pytest
from singer_sdk import metrics

from tap_flowfinity.errors import UnsortedView
from tap_flowfinity.prefetch import (
    BUFFERED_RECORDS,
    CHUNK_RECORDS,
    Job,
    ReadAhead,
    Reading,
)
from tap_flowfinity.progress import Progress

LOGGER = logging.getLogger("test-prefetch")


class Views:
    """Views of `count` records each, noting which were opened, how far read, and closed."""

    def __init__(self, count: int, fail_after: dict[str, int] | None = None) -> None:
        self.count = count
        self.fail_after = fail_after or {}
        self.opened: list[str] = []
        self.pulled: dict[str, int] = {}
        self.closed: set[str] = set()

    def job(self, name: str, start: int | None = None) -> Job:
        return Job(name, start, lambda: self.reading(name, start))

    def reading(self, name: str, start: int | None) -> Reading:
        self.opened.append(name)
        return Reading(
            Progress(LOGGER, name, "id", start, 0),
            metrics.Counter(metrics.Metric.HTTP_REQUEST_COUNT),
            self.records(name),
        )

    def records(self, name: str) -> t.Iterator[dict[str, t.Any]]:
        self.pulled[name] = 0
        try:
            for number in range(self.count):
                if number == self.fail_after.get(name):
                    raise UnsortedView(name, "went down", "sort it")
                self.pulled[name] += 1
                yield {"view": name, "id": number}
        finally:
            self.closed.add(name)


def wait_for(condition: t.Callable[[], bool], what: str) -> None:
    """Wait for a reader thread to get somewhere (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def read_all(read_ahead: ReadAhead, name: str) -> list[dict[str, t.Any]]:
    reading = read_ahead.take(name, None)
    assert reading is not None
    return list(reading.records)


def test_every_view_in_full_and_in_order():
    views = Views(1234)
    names = [f"v{n}" for n in range(6)]
    read_ahead = ReadAhead(3, lambda: [views.job(name) for name in names])
    for name in names:
        assert read_all(read_ahead, name) == [{"view": name, "id": n} for n in range(1234)]
    assert views.opened == names, "opened in sync order"
    for thread in read_ahead.threads:
        thread.join(timeout=30)
    assert len(read_ahead.threads) == 3 and not any(th.is_alive() for th in read_ahead.threads)


def test_at_most_max_parallel_views_read_and_each_buffer_is_bounded():
    views = Views(3 * BUFFERED_RECORDS)
    names = ["a", "b", "c", "d"]
    jobs = {name: views.job(name) for name in names}
    read_ahead = ReadAhead(2, lambda: list(jobs.values()))
    first = read_ahead.take("a", None)  # "a" is the stream syncing; nothing consumed yet
    assert first is not None
    wait_for(lambda: jobs["a"].buffer.full() and jobs["b"].buffer.full(), "both buffers full")
    assert views.opened == ["a", "b"], "a third view waits for a reader"
    for name in ("a", "b"):
        assert views.pulled[name] <= BUFFERED_RECORDS + CHUNK_RECORDS  # buffer + one chunk
    assert sum(1 for _ in first.records) == 3 * BUFFERED_RECORDS
    wait_for(lambda: "c" in views.opened, "the next view starts when one is read")
    assert views.opened == ["a", "b", "c"]
    read_ahead.stop()


def test_a_failure_comes_after_the_records_read_before_it():
    views = Views(2000, fail_after={"b": 777})
    read_ahead = ReadAhead(4, lambda: [views.job(name) for name in ("a", "b", "c")])
    assert len(read_all(read_ahead, "a")) == 2000
    reading = read_ahead.take("b", None)
    assert reading is not None
    got = []
    with pytest.raises(UnsortedView, match="view 'b'"):
        for record in reading.records:
            got.append(record["id"])
    assert got == list(range(777)), "every record before the failure, each once"


def test_stop_ends_every_reader_and_closes_its_answer():
    views = Views(10 * BUFFERED_RECORDS)
    read_ahead = ReadAhead(3, lambda: [views.job(name) for name in ("a", "b", "c", "d")])
    reading = read_ahead.take("a", None)
    assert reading is not None
    next(iter(reading.records))
    wait_for(lambda: len(views.opened) == 3, "three readers at work")
    read_ahead.stop()
    for thread in read_ahead.threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in read_ahead.threads)
    assert views.closed == {"a", "b", "c"} and "d" not in views.opened
    assert read_ahead.take("b", None) is None, "after a stop, a stream reads its own view"


def test_a_stream_abandoned_mid_view_stops_its_reader():
    views = Views(10 * BUFFERED_RECORDS)
    read_ahead = ReadAhead(2, lambda: [views.job("a"), views.job("b")])
    reading = read_ahead.take("a", None)
    assert reading is not None
    records = iter(reading.records)
    next(records)
    t.cast(t.Generator[t.Any, None, None], records).close()  # the SDK stopped the stream
    read_ahead.threads[0].join(timeout=30)
    assert not read_ahead.threads[0].is_alive() and views.closed == {"a"}
    read_ahead.stop()


def test_a_run_of_one_view_reads_it_in_the_stream_itself():
    views = Views(10)
    read_ahead = ReadAhead(4, lambda: [views.job("a")])
    assert read_ahead.enabled
    assert read_ahead.take("a", None) is None
    assert read_ahead.threads == [] and views.opened == []


def test_another_start_than_assumed_is_read_by_the_stream_itself():
    views = Views(10)
    read_ahead = ReadAhead(2, lambda: [views.job("a", start=5), views.job("b", start=None)])
    assert read_ahead.take("a", 7) is None
    assert read_all(read_ahead, "b") == [{"view": "b", "id": n} for n in range(10)]


def test_one_view_at_a_time_reads_nothing_ahead():
    made = threading.Event()

    def jobs() -> list[Job]:
        made.set()
        return []

    read_ahead = ReadAhead(1, jobs)
    assert not read_ahead.enabled
    assert read_ahead.take("a", None) is None
    assert not made.is_set() and read_ahead.threads == []
