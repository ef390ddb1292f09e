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

    def read(
        self, start: int | None, progress: Progress, count_request: t.Callable[[], None]
    ) -> t.Iterator[dict[str, t.Any]]:
        """Every record after `start`, each once, asking until an answer brings nothing new.

        The records already emitted stay emitted when a request fails and none is skipped;
        the retry budget restarts whenever an answer makes progress.

        Records may share one submission id (a multi-record transaction). Once a view has
        shown that, each request asks from one below the last id and drops the records of
        that id already emitted, so an answer capped (or cut) inside a group loses none of
        it; a view with unique ids asks from the last id, as the recipe says.
        """
        view = self.client.view
        cursor_field = view.cursor_field
        cursor = start
        budget = self.new_retry_budget()
        # The last id emitted and the record emitted with it; once ids repeat, the RecordIDs
        # emitted with the last id.
        last_id: int | None = None
        last_record: dict[str, t.Any] = {}
        group: set[t.Any] | None = None
        groups_seen = False
        emitted = 0
        while True:
            delivered = 0
            count_request()  # attempts, failed ones included
            progress.request()
            ask = last_id - 1 if groups_seen and last_id is not None else cursor
            try:
                for record in self._answer(ask):
                    value = record[cursor_field]
                    if value == last_id:
                        record_id = record.get("RecordID")
                        if group is None:
                            group = {last_record.get("RecordID")}
                            groups_seen = True
                        if record_id in group:
                            continue  # emitted before: this request asked from id - 1
                        group.add(record_id)
                    else:
                        last_id, last_record, group = value, record, None
                    yield record
                    cursor = value
                    progress.record(cursor)
                    delivered += 1
            except RETRIABLE_ERRORS as exc:
                emitted += delivered
                if delivered:
                    budget = self.new_retry_budget()
                self._wait_before_retry(budget, exc, f"from {view.cursor_parameter}={cursor}")
                progress.retry()
                continue
            emitted += delivered
            if not delivered:
                break
            budget = self.new_retry_budget()
        if emitted and not self.client.state_seen:
            self.logger.warning(self.client.missing_state_warning())

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
