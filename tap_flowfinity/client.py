"""The REST stream base: one synchronization view, read by Flowfinity's recipe.

The recipe: ask the view for the records after the last processed `lastSubmissionId`, and
keep asking from the last one received until an answer brings nothing new. Flowfinity
documents no page size, so this works the same whether a server sends the whole remainder
at once (one extra, empty request) or caps each answer at some count.
"""

from __future__ import annotations

import itertools
import logging
import typing as t
from functools import cached_property
from http import HTTPStatus
from urllib.parse import urlsplit

import requests
from singer_sdk.authenticators import BasicAuthenticator
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.streams.rest import PageContext
from typing_extensions import override

from tap_flowfinity.cursor import parse_cursor
from tap_flowfinity.errors import (
    AccessDenied,
    CredentialsRejected,
    CursorNotFiltering,
    FlowfinityError,
    UnsortedView,
    ViewNotFound,
)
from tap_flowfinity.parsing import iter_records
from tap_flowfinity.progress import Progress
from tap_flowfinity.retries import RETRIABLE_ERRORS, RetryBudget, describe_failure
from tap_flowfinity.sdk_seam import SeamStream
from tap_flowfinity.security import tls_verify
from tap_flowfinity.settings import TapSettings, ViewSettings

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
        # Responses are parsed while they arrive, never loaded whole into memory.
        self.requests_session.stream = True
        self.requests_session.verify = tls_verify(settings.ca_bundle)  # always verified

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
    @override
    def authenticator(self) -> BasicAuthenticator:
        """HTTP Basic for the Integration user, the way Flowfinity's REST views authenticate."""
        return BasicAuthenticator(username=self.settings.username, password=self.settings.password)

    @property
    @override
    def http_headers(self) -> dict[str, str]:
        """Ask for JSON, so a server that can answer otherwise knows what we expect."""
        return {"Accept": "application/json"}

    @property
    @override
    def timeout(self) -> int:
        """Seconds to connect, and seconds of silence tolerated while reading the body."""
        return self.settings.request_timeout

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: int | None
    ) -> dict[str, t.Any]:
        """The cursor is the page token: each request asks after the last id received."""
        return self.view.query_params(next_page_token)

    # Responses

    @override
    def validate_response(self, response: requests.Response) -> None:
        """Turn HTTP errors into a one-line reason and fix, or into a retry."""
        status = response.status_code
        if status < HTTPStatus.BAD_REQUEST:
            return
        response.close()
        if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise RetriableAPIError(f"view {self.name!r}: HTTP {status}", response)
        raise self._client_error(status)

    def _client_error(self, status: int) -> FlowfinityError:
        where = self._redacted_url
        if status == HTTPStatus.UNAUTHORIZED:
            return CredentialsRejected(
                self.name,
                f"Flowfinity rejected the credentials (HTTP 401 from {where})",
                "check username and password, and that the user is an Integration user "
                "with Query() enabled for this app",
            )
        if status == HTTPStatus.FORBIDDEN:
            return AccessDenied(
                self.name,
                f"the Integration user may not query this view (HTTP 403 from {where})",
                "grant the user Query() access to the app in Flowfinity",
            )
        if status == HTTPStatus.NOT_FOUND:
            return ViewNotFound(
                self.name,
                f"no view at {where} (HTTP 404)",
                "copy the URL from the App Editor (Configure > Integration > REST "
                "Integration > Details) into views[].url",
            )
        return FlowfinityError(
            self.name,
            f"Flowfinity answered HTTP {status} from {where}",
            "check views[].url and views[].params",
        )

    @cached_property
    def _redacted_url(self) -> str:
        """The view URL without query or user info, safe to print."""
        parts = urlsplit(self.view.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    @override
    def parse_response(self, response: requests.Response) -> t.Iterable[dict[str, t.Any]]:
        """Stream the records out of the view's JSON array as they arrive."""
        return iter_records(response, self.name)

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
        """
        cursor = self.first_request_cursor(context)
        cursor_field = self.view.cursor_field
        budget = self._new_retry_budget()
        progress = self._new_progress(cursor)
        with self.get_http_request_counter() as request_counter, progress:
            request_counter.with_context(context)
            while True:
                delivered = 0
                request_counter.increment()  # attempts, failed ones included
                progress.request()
                try:
                    for record in self._read_page(context, cursor):
                        yield record
                        cursor = record[cursor_field]
                        progress.record(cursor)
                        delivered += 1
                except RETRIABLE_ERRORS as exc:
                    if delivered:
                        budget = self._new_retry_budget()
                    self._wait_before_retry(
                        budget, exc, f"from {self.view.cursor_parameter}={cursor}"
                    )
                    progress.retry()
                    continue
                if not delivered:
                    return
                budget = self._new_retry_budget()

    def sample_records(self, size: int) -> list[dict[str, t.Any]]:
        """The view's first `size` records (for discovery), with the sync's retry policy.

        A transient failure while discovering must not fail the run any more than one while
        syncing: `meltano run` discovers before every sync.
        """
        budget = self._new_retry_budget()
        while True:
            records = self._read_page(None, None)
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
        """One request from `cursor`: yield its records, checked to ascend past the cursor."""
        http_request = self.get_http_request(
            page=PageContext(stream_context=context, next_page_token=cursor)
        )
        prepared = self.build_prepared_request(
            method=http_request.method,
            url=http_request.url,
            params=http_request.encode_params(),
            headers=http_request.headers,
        )
        response = self.send(prepared, context)
        self.update_sync_costs(prepared, response, context)
        try:
            previous = cursor
            for record in self.parse_response(response):
                value = parse_cursor(record, self.view)
                if previous is not None and value <= previous:
                    raise self._order_error(value, previous, first=previous == cursor)
                previous = value
                yield record
        finally:
            response.close()

    def _order_error(self, value: int, previous: int, *, first: bool) -> FlowfinityError:
        name = self.view.cursor_field
        if first:
            return CursorNotFiltering(
                self.name,
                f"asked for records after {name} {previous}, the view returned {value}",
                f"add the filter '{name} is greater than Previous Last Submission ID' OR "
                "'Previous Last Submission ID does not contain data' to the view, and "
                f"check cursor_parameter ({self.view.cursor_parameter!r})",
            )
        return UnsortedView(
            self.name,
            f"{name} {value} came after {previous}: the view is not sorted ascending",
            "sort the view by Last submission ID ascending",
        )
