"""Views read ahead in background threads, while the streams are still written one by one.

The Singer SDK syncs the streams one after another (`Tap.sync_all`), so a run over many views
would last the sum of their servers' latencies. The output keeps that order: each stream's
RECORD and STATE messages are written by the SDK, in the main thread, exactly as in a
sequential run, so every STATE guarantee holds unchanged. Only the network overlaps: up to
`max_parallel_views` views are read at once, in sync order, each view's records into a
bounded buffer that its stream empties when its turn comes.

- Nothing is emitted by a reader thread: a tap killed mid-run loses nothing a sequential run
  would keep, since what was read ahead had not reached the target and is read again.
- A view's failure (its HTTP status, its sort order, retries used up) is raised where its
  stream meets it, after the records read before it: the run fails naming that view, with
  the earlier streams' bookmarks already out, as in a sequential run. Retries happen inside
  the reader, as before (recipe.py).
- Memory stays bounded: a reader whose buffer is full waits, keeping its answer's connection
  open; the buffer holds `BUFFERED_RECORDS` records (2,000), so the usual incremental answer
  fits in it whole and its connection closes at once. Should the server drop a connection left
  waiting (a first sync of a big view queued behind another), the recipe resumes it from the
  last record read, as after any cut.
- When a stream ends without having read all of its view (it failed, or the SDK stopped
  it), the read-ahead stops: the readers close their answers and end, and a stream that
  still syncs afterwards reads its view itself. So does one whose start cursor turns out to
  differ from the one the read-ahead assumed (the bookmark in the state the run was given).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
import typing as t

if t.TYPE_CHECKING:
    from singer_sdk import metrics

    from tap_flowfinity.progress import Progress

Record = dict[str, t.Any]

# Records travel in chunks (a queue operation per record would cost the sync CPU): a chunk
# goes out when it is full, or when its first record has waited this long.
CHUNK_RECORDS = 500
CHUNK_SECONDS = 0.2
# Read ahead per view at most: 4 chunks of 500 records (~6 MB of typical records). More does
# not read faster (the buffer only has to bridge the server's pauses), and a reader ahead of a
# slow stream (a busy machine, a target that pushes back) held 20 chunks: ~30 MB more peak RSS.
BUFFERED_CHUNKS = 4
BUFFERED_RECORDS = CHUNK_RECORDS * BUFFERED_CHUNKS
# How often a reader waiting on a full buffer checks whether it was stopped.
POLL_SECONDS = 0.25
# How long a stop waits for the readers to end.
STOP_WAIT_SECONDS = 1.0


@dataclasses.dataclass
class Reading:
    """One view's read: its progress and request counter, its records (`Job.start`: where)."""

    progress: Progress
    request_counter: metrics.Counter
    records: t.Iterator[Record]


class _End:
    """The view was read to the end."""


@dataclasses.dataclass
class _Failed:
    """Reading the view failed: the error, to raise in the stream's thread."""

    error: Exception


_Item: t.TypeAlias = "Reading | list[Record] | _End | _Failed"


class Job:
    """One view read ahead: the reader fills the buffer, the stream empties it."""

    def __init__(self, name: str, start: int | None, open_reading: t.Callable[[], Reading]) -> None:
        self.name = name
        self.start = start
        self.open_reading = open_reading
        self.buffer: queue.Queue[_Item] = queue.Queue(BUFFERED_CHUNKS)
        self.stopped = threading.Event()

    def stop(self) -> None:
        """No more reading: a waiting reader closes its answer and ends."""
        self.stopped.set()

    # The reader's side (a background thread)

    def read(self) -> None:
        """Read the view into the buffer; an error goes in after the records before it."""
        if self.stopped.is_set():
            return
        try:
            reading = self.open_reading()
        except Exception as exc:  # the stream raises it, as a sequential read would
            self._put(_Failed(exc))
            return
        if not self._put(reading):
            return
        records = reading.records
        chunk: list[Record] = []
        since = time.monotonic()
        try:
            for record in records:
                if not chunk:
                    since = time.monotonic()
                chunk.append(record)
                if len(chunk) >= CHUNK_RECORDS or time.monotonic() - since >= CHUNK_SECONDS:
                    if not self._put(chunk):
                        return
                    chunk = []
        except Exception as exc:
            if not chunk or self._put(chunk):
                self._put(_Failed(exc))
            return
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()  # stopped early: the answer's connection is closed now
        if not chunk or self._put(chunk):
            self._put(_End())

    def _put(self, item: _Item) -> bool:
        """Buffer `item`, waiting while the buffer is full (False: stopped meanwhile)."""
        while not self.stopped.is_set():
            try:
                self.buffer.put(item, timeout=POLL_SECONDS)
            except queue.Full:
                continue
            return True
        return False

    # The stream's side (the main thread)

    def reading(self) -> Reading:
        """The view's reading, its records taken from the buffer (waits for the reader)."""
        first = self.buffer.get()
        if isinstance(first, _Failed):
            raise first.error
        if not isinstance(first, Reading):  # pragma: no cover - the reader puts it first
            raise TypeError(f"view {self.name!r}: read-ahead out of order")
        return dataclasses.replace(first, records=self._records())

    def _records(self) -> t.Generator[Record, None, None]:
        try:
            while True:
                item = self.buffer.get()
                if isinstance(item, _End):
                    return
                if isinstance(item, _Failed):
                    raise item.error
                if isinstance(item, list):
                    yield from item
        finally:
            self.stop()  # a no-op after the end; else the reader must not go on


class ReadAhead:
    """The tap's read-ahead: started by the first stream that syncs, over the ones to sync.

    `jobs` lists the views the run will sync, in the order the SDK syncs them (the selected
    streams, in the tap's order): deselected views are never read. A run that syncs one view
    reads nothing ahead.
    """

    def __init__(
        self,
        max_parallel: int,
        jobs: t.Callable[[], list[Job]],
        logger: logging.Logger | None = None,
    ) -> None:
        self.max_parallel = max_parallel
        self.logger = logger
        self._make_jobs = jobs
        self._jobs: dict[str, Job] | None = None  # the ones not taken yet
        self._every_job: list[Job] = []
        self._pending: collections.deque[Job] = collections.deque()
        self._lock = threading.Lock()
        self._stopped = False
        self.threads: list[threading.Thread] = []

    @property
    def enabled(self) -> bool:
        """Whether views are read ahead at all (1: each stream reads its own view)."""
        return self.max_parallel > 1

    def take(self, name: str, start: int | None) -> Reading | None:
        """The view's reading from the read-ahead (None: the stream reads the view itself)."""
        if not self.enabled or self._stopped:
            return None
        if self._jobs is None:
            self._start()
        assert self._jobs is not None
        job = self._jobs.pop(name, None)
        if job is None:
            return None
        if job.start != start or job.stopped.is_set():
            job.stop()
            return None
        return job.reading()

    def stop(self, wait: float = STOP_WAIT_SECONDS) -> None:
        """Stop every reader: the run failed, or a stream was cut short.

        Waits up to `wait` seconds for the readers to end (one in the middle of a request
        ends when the request does), so a failing run rarely exits while one still logs.
        """
        with self._lock:
            self._stopped = True
            self._pending.clear()
        for job in self._every_job:
            job.stop()  # taken ones too: a failed stream may never close its records
        deadline = time.monotonic() + wait
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0))

    def _start(self) -> None:
        jobs = self._make_jobs()
        if len(jobs) < 2:
            # One view: nothing to read meanwhile, and a reader thread would only contend
            # with the stream for the interpreter (a first sync of 100k records: ~15% slower,
            # ~15% more CPU). The stream reads its view itself; the socket buffers ahead.
            self._jobs = {}
            return
        self._every_job = list(jobs)
        self._jobs = {job.name: job for job in jobs}
        self._pending.extend(jobs)
        if self.logger is not None:
            self.logger.info(
                "Reading %d views, up to %d at once (max_parallel_views); streams are "
                "written one after another",
                len(jobs),
                self.max_parallel,
            )
        for number in range(min(self.max_parallel, len(jobs))):
            thread = threading.Thread(
                target=self._reader, name=f"tap-flowfinity-reader-{number + 1}", daemon=True
            )
            self.threads.append(thread)
            thread.start()

    def _reader(self) -> None:
        """One reader thread: the next view in sync order, until none is left."""
        while True:
            with self._lock:
                if self._stopped or not self._pending:
                    return
                job = self._pending.popleft()
            job.read()
