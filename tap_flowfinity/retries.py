"""How long to wait before asking a view again after a transient failure.

One policy covers every transient failure, whether it came before the response (a refused
connection, HTTP 429 or 5xx) or in the middle of its body (a dropped connection, a cut-off
array): in every case the next request simply asks again from the last cursor emitted.
"""

from __future__ import annotations

import email.utils
import time
import typing as t
from dataclasses import dataclass, field
from datetime import datetime, timezone

import backoff
import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_flowfinity.errors import RetriesExhausted
from tap_flowfinity.parsing import BODY_READ_ERRORS

RETRIABLE_ERRORS: tuple[type[BaseException], ...] = (RetriableAPIError, *BODY_READ_ERRORS)

FIRST_WAIT_SECONDS = 1.0
LONGEST_WAIT_SECONDS = 120.0


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Read `Retry-After` (delta-seconds or an HTTP date), if the server sent one."""
    if response is None:
        return None
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def describe_failure(exc: BaseException) -> str:
    """Say what went wrong in a few words, without the URL's query or any header."""
    response = getattr(exc, "response", None)
    if isinstance(exc, RetriableAPIError) and response is not None:
        return f"HTTP {response.status_code}"
    if isinstance(exc, RetriableAPIError):
        return str(exc)
    return type(exc).__name__


@dataclass
class RetryBudget:
    """The retries left for one request: a count and a deadline, whichever ends first.

    A fresh budget starts whenever a response delivers new records, so a long history read
    through an unreliable network keeps going as long as each attempt makes progress.
    """

    view: str
    max_retries: int
    max_seconds: float
    sleep: t.Callable[[float], None] = time.sleep
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    _waits: t.Iterator[float] = field(init=False)

    def __post_init__(self) -> None:
        waits = backoff.expo(factor=FIRST_WAIT_SECONDS, max_value=LONGEST_WAIT_SECONDS)
        next(waits)  # the generator's priming value
        self._waits = waits

    def wait_before_retry(self, exc: BaseException) -> float:
        """Sleep before the next attempt, or raise `RetriesExhausted` when the budget is spent.

        A server's `Retry-After` is honoured as given (never shortened by jitter); otherwise
        the wait is exponential with full jitter so that many workers do not retry in step.
        """
        elapsed = time.monotonic() - self.started
        hinted = retry_after_seconds(getattr(exc, "response", None))
        wait = hinted if hinted is not None else backoff.full_jitter(next(self._waits))
        if self.retries >= self.max_retries or elapsed + wait > self.max_seconds:
            raise RetriesExhausted(
                self.view,
                f"gave up after {self.retries + 1} attempts in {elapsed:.0f}s; "
                f"last failure: {describe_failure(exc)}",
                "check that Flowfinity is reachable from here, or raise max_retries / "
                "max_retry_seconds",
            ) from None
        self.retries += 1
        self.sleep(wait)
        return wait
