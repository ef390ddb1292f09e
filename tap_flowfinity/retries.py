"""How long to wait before asking a view again after a transient failure.

One policy covers every transient failure, whether it came before the response (a refused
connection, HTTP 429 or 5xx) or in the middle of its body (a dropped connection, a cut-off
array): in every case the next request simply asks again from the last cursor emitted.
"""

from __future__ import annotations

import email.utils
import random
import time
import typing as t
from dataclasses import dataclass, field
from datetime import datetime, timezone

import backoff
import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_flowfinity.errors import FlowfinityError, RetriesExhausted
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
        text = str(exc)  # "view 'name': what happened": the view is named by the caller
        return text.split("': ", 1)[1] if text.startswith("view '") and "': " in text else text
    return network_problem(exc) or type(exc).__name__


def retry_fix(exc: BaseException) -> str:
    """What to do when a transient failure outlasted the retries."""
    response = getattr(exc, "response", None)
    if isinstance(exc, RetriableAPIError) and response is not None:
        return (
            f"Flowfinity kept answering HTTP {response.status_code}: try again later, or "
            "raise max_retries / max_retry_seconds"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return (
            "check that Flowfinity is reachable from here, or raise request_timeout "
            "(and max_retries / max_retry_seconds)"
        )
    if isinstance(exc, RetriableAPIError):  # the body was cut off
        return (
            "a network, proxy or server problem keeps cutting the response: check them, or "
            "raise max_retries / max_retry_seconds"
        )
    return (
        "check the host and port in views[].url and that Flowfinity is reachable from here "
        "(DNS, firewall, proxy), or raise max_retries / max_retry_seconds"
    )


def network_problem(exc: BaseException) -> str | None:
    """Name the cause of a failed connection the way an operator can act on it."""
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS failed ({_innermost_reason(exc)})"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "no connection within request_timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "the server sent nothing for request_timeout seconds"
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused (nothing listens at that host and port)"
    if "Failed to resolve" in text or "Name or service not known" in text:
        return "the host name does not resolve (DNS)"
    if isinstance(exc, (requests.exceptions.ConnectionError, ConnectionError)):
        return f"connection failed ({type(exc).__name__})"
    return None


def _innermost_reason(exc: BaseException) -> str:
    """The deepest readable reason of a requests/urllib3 TLS error, e.g. the verify failure."""
    text = str(exc)
    for marker in ("certificate verify failed", "wrong version number", "hostname mismatch"):
        start = text.find(marker)
        if start >= 0:
            ends = [i for i in (text.find(" (", start), text.find(")", start)) if i > 0]
            return text[start : min(ends) if ends else None]
    return type(exc).__name__


def tls_error(view: str, exc: BaseException) -> FlowfinityError | None:
    """A TLS failure is a setup problem, not a transient one: fail at once, with the fix."""
    if not isinstance(exc, requests.exceptions.SSLError):
        return None
    reason = _innermost_reason(exc)
    if "version number" in reason.lower():
        fix = "the server does not speak TLS on that port: check the scheme and port of views[].url"
    else:
        fix = (
            "if the site uses a private CA or a TLS-inspecting proxy, set ca_bundle to its "
            "PEM file; otherwise check the host name in views[].url"
        )
    return FlowfinityError(view, f"TLS failed: {reason}", fix)


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
    # The jitter's random source (a seeded one makes the waits reproducible).
    rng: random.Random = field(default_factory=random.Random)
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
        fatal = tls_error(self.view, exc)
        if fatal is not None:
            raise fatal from None
        elapsed = time.monotonic() - self.started
        hinted = retry_after_seconds(getattr(exc, "response", None))
        wait = hinted if hinted is not None else self.rng.uniform(0, next(self._waits))
        if self.retries >= self.max_retries or elapsed + wait > self.max_seconds:
            raise RetriesExhausted(
                self.view,
                f"gave up after {self.retries + 1} attempts in {elapsed:.0f}s; "
                f"last failure: {describe_failure(exc)}",
                retry_fix(exc),
            ) from None
        self.retries += 1
        self.sleep(wait)
        return wait
