"""Flowfinity's synchronization recipe: the sequence of requests that reads a view.

Ask the view for the records after the last processed `lastSubmissionId`, and keep asking
from the last one received until an answer brings nothing new. Flowfinity documents no page
size, so this works the same whether a server sends the whole remainder at once (one extra,
empty request) or caps each answer at some count. Each request goes through the view's
client (client.py); a transient failure, before the answer or in the middle of its body,
is retried from the last record emitted, within the retry budget (retries.py).
"""

from __future__ import annotations

import itertools
import logging
import time
import typing as t

from tap_flowfinity.retries import RETRIABLE_ERRORS, RetryBudget, describe_failure

if t.TYPE_CHECKING:
    import requests

    from tap_flowfinity.client import ViewClient
    from tap_flowfinity.progress import Progress
    from tap_flowfinity.settings import TapSettings


class Recipe:
    """Reads one view by the recipe, through its client, with the tap's retry policy."""

    def __init__(
        self,
        client: ViewClient,
        settings: TapSettings,
        logger: logging.Logger,
        on_answer: t.Callable[[requests.Response], None] = lambda response: None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.logger = logger
        self.on_answer = on_answer  # each answer before its status is checked (metrics)
        # A read saw a second non-empty answer: the server caps answers (or the view grew
        # while it was read). The stream remembers it in its state for the next runs.
        self.answers_capped = False
        # Whether the last read reached the end of the view (False: stopped at its deadline).
        self.read_complete = False

    def read(
        self,
        start: int | None,
        progress: Progress,
        count_request: t.Callable[[], None],
        deadline: float | None = None,
        capped: bool = False,
    ) -> t.Iterator[dict[str, t.Any]]:
        """Every record after `start`, each once, asking until an answer brings nothing new.

        The records already emitted stay emitted when a request fails and none is skipped;
        the retry budget restarts whenever an answer makes progress. At `deadline` (a
        `time.monotonic` instant) the read stops after the answer in hand, one answer
        always read to its end; `read_complete` tells afterwards whether it reached the
        end of the view (the read may run in a read-ahead thread).

        Records may share one submission id (a multi-record transaction), and an answer may
        end inside such a group: capped by the server, or cut by a failure. A view whose ids
        are unique and whose answers are not capped asks exactly as the recipe says (from
        the last id). Once the read has seen ids repeat, a second non-empty answer (the
        server caps answers), or a failure after records of an id, each request asks from
        one below the last id and drops the records of that id already emitted; the id that
        ended the first answer, asked past before the cap showed, gets one request that
        reads just that id's records. Asking from one below, an answer of only the last id's
        records (already emitted) is followed by one request after that id: a cap may have
        fallen there, and the read ends on an answer with nothing new. `capped`: an earlier
        run saw the server cap answers (`answers_capped` tells after the read), so every
        request asks from one below.
        """
        view = self.client.view
        cursor_field = view.cursor_field
        cursor = start
        budget = self.new_retry_budget()
        last_id: int | None = None  # the last id emitted
        last_record_id: t.Any = None  # the RecordID emitted with it first
        group: set[t.Any] | None = None  # every RecordID emitted with it, once ids repeat
        ask_below = capped  # ids repeat or answers are capped: ask from last_id - 1
        answers = 0  # non-empty answers
        first_boundary: tuple[int, set[t.Any]] | None = None  # unproven: see the docstring
        retry_below = False  # the last attempt failed after records of `last_id`
        past_group = False  # ask from `last_id` once: see below
        group_filled_answer = False  # the answer before held as many of `last_id` as any
        longest = 0  # the most records an answer has held
        while True:
            if answers and deadline is not None and time.monotonic() >= deadline:
                self.read_complete = False
                return
            delivered = skipped = 0
            count_request()  # attempts, failed ones included
            progress.request()
            below = (ask_below or retry_below) and not past_group and last_id is not None
            ask = last_id - 1 if below and last_id is not None else cursor
            try:
                for record in self._answer(ask):
                    value = record[cursor_field]
                    if value == last_id:
                        record_id = record.get("RecordID")
                        if group is None:
                            group = {last_record_id}
                        if record_id in group:
                            skipped += 1
                            continue  # emitted before: this request asked from id - 1
                        group.add(record_id)
                        ask_below = True  # ids repeat
                    else:
                        last_id, last_record_id, group = value, record.get("RecordID"), None
                    yield record
                    cursor = value
                    progress.record(cursor)
                    delivered += 1
            except RETRIABLE_ERRORS as exc:
                if delivered:
                    budget = self.new_retry_budget()
                    retry_below = True
                self._wait_before_retry(budget, exc, f"from {view.cursor_parameter}={cursor}")
                progress.retry()
                continue
            if not delivered:
                if below and skipped:
                    # Only records of the last id, already emitted: the end of the view, or
                    # a cap (fixed, or varying from answer to answer) that fell there. Asking
                    # from one below can never get past it, so ask after the id once: the
                    # recipe's own end is an answer with nothing after the last id.
                    past_group = True
                    group_filled_answer = skipped >= max(longest, 1)
                    continue
                break
            if past_group and group_filled_answer:
                self._warn_group_beyond_cap(last_id, longest)
            past_group = retry_below = False
            longest = max(longest, delivered + skipped)
            answers += 1
            if answers == 1 and not ask_below and last_id is not None:
                first_boundary = (last_id, set(group or {last_record_id}))
            elif answers == 2:
                ask_below = self.answers_capped = True
                if first_boundary is not None:
                    yield from self._rest_of_group(*first_boundary, cursor, progress, count_request)
                    first_boundary = None
            budget = self.new_retry_budget()
        if (answers or last_id is not None) and not self.client.state_seen:
            self.logger.warning(self.client.missing_state_warning())
        self.read_complete = True

    def _warn_group_beyond_cap(self, submission_id: int | None, longest: int) -> None:
        """A group as long as the server's cap: records past the cap would be out of reach."""
        self.logger.warning(
            "View %r: an answer held only records of submission id %s, as many as the "
            "longest answer (%d): the server caps answers there, and more records may share "
            "that id; those past the cap cannot be read (the recipe asks for ids after one). "
            "Ask the site's administrator to raise the REST page size.",
            self.client.name,
            submission_id,
            longest,
        )

    def _rest_of_group(
        self,
        submission_id: int,
        emitted: set[t.Any],
        cursor: int | None,
        progress: Progress,
        count_request: t.Callable[[], None],
    ) -> t.Iterator[dict[str, t.Any]]:
        """The records of `submission_id` not in `emitted`: one request, read only that far.

        Asked when a second answer shows the server caps answers, for the id that ended the
        first one: its group may have continued past the cap.
        """
        cursor_field = self.client.view.cursor_field
        budget = self.new_retry_budget()
        while True:
            count_request()
            progress.request()
            answer = self._answer(submission_id - 1)
            try:
                for record in answer:
                    if record[cursor_field] != submission_id:
                        return
                    if record.get("RecordID") not in emitted:
                        emitted.add(record.get("RecordID"))
                        yield record
                        if cursor is not None:
                            progress.record(cursor)  # the bookmark stays where it is
                return
            except RETRIABLE_ERRORS as exc:
                self._wait_before_retry(
                    budget, exc, f"for the rest of submission id {submission_id}"
                )
                progress.retry()
            finally:
                answer.close()

    def sample(self, size: int, after: int | None) -> list[dict[str, t.Any]]:
        """The first `size` records after `after` (for discovery), with the same retries.

        A transient failure while discovering must not fail the run any more than one while
        syncing: `meltano run` discovers before every sync.
        """
        budget = self.new_retry_budget()
        while True:
            records = self._answer(after)
            try:
                return list(itertools.islice(records, size))
            except RETRIABLE_ERRORS as exc:
                self._wait_before_retry(budget, exc, "for discovery")
            finally:
                records.close()

    def new_retry_budget(self) -> RetryBudget:
        """A fresh budget for one request (and its retries)."""
        return RetryBudget(
            view=self.client.name,
            max_retries=self.settings.max_retries,
            max_seconds=float(self.settings.max_retry_seconds),
        )

    def _answer(self, cursor: int | None) -> t.Generator[dict[str, t.Any], None, None]:
        """One request from `cursor`: its records, checked not to go down nor below it."""
        response = self.client.request(cursor)
        self.on_answer(response)
        self.client.check_status(response)
        yield from self.client.records(response, cursor)

    def _wait_before_retry(self, budget: RetryBudget, exc: BaseException, what: str) -> None:
        """Spend one retry of `budget` (or raise when it is used up), and say so in the log."""
        waited = budget.wait_before_retry(exc)
        self.logger.warning(
            "Retrying view %r %s after %s (waited %.1fs, retry %d)",
            self.client.name,
            what,
            describe_failure(exc),
            waited,
            budget.retries,
        )
