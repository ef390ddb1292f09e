"""The REST stream base: one synchronization view, read by Flowfinity's recipe.

The recipe: ask the view for the records after the last processed `lastSubmissionId`, and
keep asking from the last one received until an answer brings nothing new. Flowfinity
documents no page size, so this works the same whether a server sends the whole remainder
at once (one extra, empty request) or caps each answer at some count. Every request goes
through the view's ViewClient (viewclient.py).
"""

from __future__ import annotations

import itertools
import logging
import typing as t
from functools import cached_property
from http import HTTPStatus

import requests
from singer_sdk import metrics
from typing_extensions import override

from tap_flowfinity.progress import Progress
from tap_flowfinity.retries import RETRIABLE_ERRORS, RetryBudget, describe_failure
from tap_flowfinity.sdk_seam import SeamStream
from tap_flowfinity.settings import TapSettings, ViewSettings
from tap_flowfinity.viewclient import ViewClient

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context
    from singer_sdk.tap_base import Tap


class FlowfinityStream(SeamStream):
    """Reads one Flowfinity view, page after page, from a submission-id cursor."""

    path = ""

    def __init__(
        self,
        tap: Tap,
        settings: TapSettings,
        view: ViewSettings,
        schema: dict[str, t.Any] | None,
    ) -> None:
        self.settings = settings
        self.view = view
        super().__init__(tap=tap, name=view.name, schema=schema)

    @property
    @override
    def url_base(self) -> str:
        """The view's URL is opaque configuration: no pattern of Flowfinity's is assumed."""
        return self.view.url

    @override
    def get_url(self, context: Context | None) -> str:
        """Exactly the configured URL: the SDK's `{setting}` templating must not touch it."""
        return self.view.url

    @cached_property
    def client(self) -> ViewClient:
        """The view's HTTP client (the doctor and capture build theirs the same way)."""
        client = ViewClient.for_settings(self.settings, self.view, self.logger, self.user_agent)
        warning = client.url_warning()
        if warning:
            self.logger.warning(warning)
        return client

    # The recipe

    def first_request_cursor(self, context: Context | None) -> int | None:
        """Where this run starts: override in the stream (bookmark, lookback, start id)."""
        return None

    @override
    def request_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Ask from the last cursor received until a response brings nothing new.

        A transient failure, before the response or in the middle of its body, is retried
        from the last record emitted: the records already emitted stay emitted and none is
        skipped. The budget restarts whenever a response makes progress.

        Records may share one submission id (a multi-record transaction). Once a view has
        shown that, each request asks from one below the last id and drops the records of
        that id already emitted, so an answer capped (or cut) inside a group loses none of
        it; a view with unique ids asks from the last id, as the recipe says.
        """
        cursor = self.first_request_cursor(context)
        cursor_field = self.view.cursor_field
        budget = self._new_retry_budget()
        progress = self._new_progress(cursor)
        # The last id emitted and the RecordID emitted with it; once ids repeat, every
        # RecordID emitted with the last id.
        last_id: int | None = None
        last_record_id: t.Any = None
        group: set[t.Any] | None = None
        groups_seen = False
        emitted = 0
        with self.get_http_request_counter() as request_counter, progress:
            request_counter.with_context(context)
            while True:
                delivered = 0
                request_counter.increment()  # attempts, failed ones included
                progress.request()
                ask = last_id - 1 if groups_seen and last_id is not None else cursor
                try:
                    for record in self._read_page(context, ask):
                        value = record[cursor_field]
                        if value == last_id:
                            record_id = record.get("RecordID")
                            if group is None:
                                group = {last_record_id}
                                groups_seen = True
                            if record_id in group:
                                continue  # emitted before: this request asked from id - 1
                            group.add(record_id)
                        else:
                            last_id, last_record_id, group = value, record.get("RecordID"), None
                        yield record
                        cursor = value
                        progress.record(cursor)
                        delivered += 1
                except RETRIABLE_ERRORS as exc:
                    emitted += delivered
                    if delivered:
                        budget = self._new_retry_budget()
                    self._wait_before_retry(
                        budget, exc, f"from {self.view.cursor_parameter}={cursor}"
                    )
                    progress.retry()
                    continue
                emitted += delivered
                if not delivered:
                    break
                budget = self._new_retry_budget()
        if emitted and not self.client.state_seen:
            self.logger.warning(self.client.missing_state_warning())

    def sample_records(self, size: int, after: int | None) -> list[dict[str, t.Any]]:
        """The view's first `size` records after `after` (for discovery), with retries.

        A transient failure while discovering must not fail the run any more than one while
        syncing: `meltano run` discovers before every sync.
        """
        budget = self._new_retry_budget()
        while True:
            records = self._read_page(None, after)
            try:
                return list(itertools.islice(records, size))
            except RETRIABLE_ERRORS as exc:
                self._wait_before_retry(budget, exc, "for discovery")
            finally:
                records.close()

    def _wait_before_retry(self, budget: RetryBudget, exc: BaseException, what: str) -> None:
        """Spend one retry of `budget` (or raise when it is used up), and say so in the log."""
        waited = budget.wait_before_retry(exc)
        self.log(
            "Retrying view %r %s after %s (waited %.1fs, retry %d)",
            self.name,
            what,
            describe_failure(exc),
            waited,
            budget.retries,
            level=logging.WARNING,
        )

    def _new_progress(self, start: int | None) -> Progress:
        return Progress(
            self.logger,
            self.name,
            self.view.cursor_field,
            start,
            float(self.settings.progress_interval),
        )

    def _new_retry_budget(self) -> RetryBudget:
        return RetryBudget(
            view=self.name,
            max_retries=self.settings.max_retries,
            max_seconds=float(self.settings.max_retry_seconds),
        )

    def _read_page(
        self, context: Context | None, cursor: int | None
    ) -> t.Generator[dict[str, t.Any], None, None]:
        """One request from `cursor`: its records, checked not to go down nor below it."""
        response = self.client.request(cursor)
        self._log_request_duration(response, context)
        self.client.check_status(response)
        yield from self.client.records(response, cursor)

    def _log_request_duration(self, response: requests.Response, context: Context | None) -> None:
        """The SDK's `http_request_duration` metric, written through its public metrics API."""
        tags: dict[str, t.Any] = {
            metrics.Tag.STREAM: self.name,
            metrics.Tag.ENDPOINT: self.path,
            metrics.Tag.HTTP_STATUS_CODE: response.status_code,
            metrics.Tag.STATUS: (
                metrics.Status.SUCCEEDED
                if response.status_code < HTTPStatus.BAD_REQUEST
                else metrics.Status.FAILED
            ),
        }
        if context:
            tags[metrics.Tag.CONTEXT] = context
        point = metrics.Point(
            "timer",
            metric=metrics.Metric.HTTP_REQUEST_DURATION,
            value=response.elapsed.total_seconds(),
            tags=tags,
        )
        metrics.log(self.metrics_logger, point)
