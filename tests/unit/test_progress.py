"""Progress lines at a steady interval, and the per-stream summary."""

from __future__ import annotations

import logging

import pytest

from tap_flowfinity.progress import CHECK_EVERY, Progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_lines_at_the_interval_and_a_summary(caplog):
    clock = Clock()
    logger = logging.getLogger("test-progress")
    caplog.set_level(logging.INFO, logger="test-progress")
    with Progress(logger, "leads", "lastSubmissionId", 10, interval=30, clock=clock) as progress:
        progress.request()
        for cursor in range(11, 11 + CHECK_EVERY * 4):
            progress.record(cursor)
            clock.now += 0.05  # 256 records take 12.8 s: the first line at the 3rd check
        progress.retry()
        progress.request()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # the next line would be due at 68.4 s
    assert lines[0] == (
        "view 'leads': 768 records so far, lastSubmissionId 778, 20 records/s, "
        "1 requests, 0 retries, 38.4s"
    )
    assert lines[-1].startswith("view 'leads' done: 1024 records in 51.2s (20 records/s)")
    assert "lastSubmissionId 1034, 2 requests, 1 retries" in lines[-1]


@pytest.mark.parametrize(("exc", "outcome"), [(GeneratorExit, "stopped"), (ValueError, "failed")])
def test_summary_says_how_the_stream_ended(caplog, exc, outcome):
    caplog.set_level(logging.INFO, logger="test-progress")
    with pytest.raises(exc), Progress(logging.getLogger("test-progress"), "v", "c", None, 0):
        raise exc
    assert caplog.records[-1].getMessage().startswith(f"view 'v' {outcome}: 0 records")
    assert "c from the start" in caplog.records[-1].getMessage()


def test_zero_interval_logs_only_the_summary(caplog):
    caplog.set_level(logging.INFO, logger="test-progress")
    clock = Clock()
    with Progress(logging.getLogger("test-progress"), "v", "c", None, 0, clock=clock) as p:
        for cursor in range(CHECK_EVERY * 3):
            p.record(cursor)
            clock.now += 10
    assert len(caplog.records) == 1
