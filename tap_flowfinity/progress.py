"""Progress of one stream, for the operator watching a long first sync in a scheduler's log.

While a stream runs, a line at a steady interval: records so far, the bookmark reached,
records/s, requests and retries; when it ends (or fails, or is stopped), a summary. The
SDK's own METRIC lines are untouched. The per-record hook only counts: the clock is read
once every `CHECK_EVERY` records, and once per request, so a slow trickle is reported too.
"""

from __future__ import annotations

import logging
import time
import typing as t

CHECK_EVERY = 256


class Progress:
    """Counts one stream's records, requests and retries, and logs them now and then."""

    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        view: str,
        cursor_field: str,
        start: int | None,
        interval: float,
        clock: t.Callable[[], float] = time.monotonic,
        mode: str | None = None,
    ) -> None:
        self.logger = logger
        self.view = view
        self.mode = mode  # e.g. "reconciling": named in every line
        self.outcome_note = ""  # appended to the summary (e.g. how many records the view holds)
        self.cursor_field = cursor_field
        self.start = start
        self.cursor = start
        self.interval = interval
        self.clock = clock
        self.records = 0
        self.requests = 0
        self.retries = 0
        self.started = clock()
        self._next_log = self.started + interval if interval > 0 else float("inf")
        self._next_check = CHECK_EVERY

    # Hooks (called by the request loop)

    def record(self, cursor: int) -> None:
        """One record emitted: cheap enough for the hot loop."""
        self.records += 1
        self.cursor = cursor
        if self.records >= self._next_check:
            self._next_check = self.records + CHECK_EVERY
            self.maybe_log()

    def request(self) -> None:
        """One request (attempt) sent."""
        self.requests += 1
        self.maybe_log()

    def retry(self) -> None:
        """One failed attempt that will be retried."""
        self.retries += 1

    # Output

    def maybe_log(self) -> None:
        """Log a progress line if the interval has passed since the last one."""
        now = self.clock()
        if now >= self._next_log:
            self._next_log = now + self.interval
            self.logger.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """The progress line: view, records so far, bookmark, rate, requests, retries."""
        elapsed = (self.clock() if now is None else now) - self.started
        return (
            f"view {self.view!r}{self._mode()}: {self.records} records so far, {self._bookmark()}, "
            f"{self._rate(elapsed)} records/s, {self.requests} requests, "
            f"{self.retries} retries, {elapsed:.1f}s"
        )

    def summary(self, outcome: str = "done") -> str:
        """The end-of-stream line."""
        elapsed = self.clock() - self.started
        note = f"; {self.outcome_note}" if self.outcome_note else ""
        return (
            f"view {self.view!r}{self._mode()} {outcome}: {self.records} records in "
            f"{elapsed:.1f}s ({self._rate(elapsed)} records/s), {self._bookmark()}, "
            f"{self.requests} requests, {self.retries} retries{note}"
        )

    def _mode(self) -> str:
        return f" ({self.mode})" if self.mode else ""

    def _bookmark(self) -> str:
        if self.cursor is None:
            return f"{self.cursor_field} from the start"
        return f"{self.cursor_field} {self.cursor}"

    def _rate(self, elapsed: float) -> str:
        return f"{self.records / elapsed:.0f}" if elapsed > 0 else "0"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            outcome = "done"
        elif issubclass(exc_type, GeneratorExit):
            outcome = "stopped"
        else:
            outcome = "failed"
        self.logger.info("%s", self.summary(outcome))
