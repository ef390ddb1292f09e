import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_flowfinity.errors import RetriesExhausted
from tap_flowfinity.retries import (
    FIRST_WAIT_SECONDS,
    LONGEST_WAIT_SECONDS,
    RetryBudget,
    retry_after_seconds,
)


def response_with(headers: dict, status: int = 429):
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    return response


def test_retry_after_seconds():
    assert retry_after_seconds(response_with({"Retry-After": "7"})) == 7.0


def test_retry_after_http_date():
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    seconds = retry_after_seconds(
        response_with({"Retry-After": format_datetime(when, usegmt=True)})
    )
    assert 25 <= seconds <= 31


def test_retry_after_in_the_past_or_garbage():
    past = format_datetime(datetime.now(timezone.utc) - timedelta(hours=1), usegmt=True)
    assert retry_after_seconds(response_with({"Retry-After": past})) == 0.0
    assert retry_after_seconds(response_with({"Retry-After": "soon"})) is None
    assert retry_after_seconds(response_with({})) is None
    assert retry_after_seconds(None) is None


def test_budget_honours_retry_after_exactly_and_counts():
    slept = []
    budget = RetryBudget(view="v", max_retries=3, max_seconds=100, sleep=slept.append)
    exc = RetriableAPIError("HTTP 429", response_with({"Retry-After": "4"}))
    assert budget.wait_before_retry(exc) == 4.0
    assert slept == [4.0]
    assert budget.retries == 1


def waits_of(seed, tries=8):
    slept = []
    budget = RetryBudget(
        view="v", max_retries=100, max_seconds=1e9, sleep=slept.append, rng=random.Random(seed)
    )
    for _ in range(tries):
        budget.wait_before_retry(ConnectionResetError())
    return slept


# The exponential caps: 1, 2, 4, ... seconds, at most LONGEST_WAIT_SECONDS.
CAPS = [min(FIRST_WAIT_SECONDS * 2**k, LONGEST_WAIT_SECONDS) for k in range(9)]


def test_backoff_waits_are_jittered_below_a_cap_that_doubles():
    for seed in range(50):
        waits = waits_of(seed, tries=9)
        assert all(0 <= wait <= cap for wait, cap in zip(waits, CAPS, strict=True)), waits
        assert len(set(waits)) == len(waits), "full jitter: no two waits alike"
        assert sum(waits) > 0


def test_backoff_waits_grow_on_average_and_the_cap_stops_them():
    seeds = range(400)
    runs = [waits_of(seed, tries=9) for seed in seeds]
    means = [sum(run[k] for run in runs) / len(runs) for k in range(9)]
    # Full jitter: uniform between 0 and the cap, so the mean is about half the cap.
    for mean, cap in zip(means, CAPS, strict=True):
        assert 0.4 * cap <= mean <= 0.6 * cap, (means, CAPS)
    assert means[0] < means[2] < means[4] < means[6] < means[7]
    assert CAPS[-1] == LONGEST_WAIT_SECONDS  # 2**8 s would be more: the cap holds
    assert max(run[-1] for run in runs) <= LONGEST_WAIT_SECONDS


def test_the_same_seed_gives_the_same_waits():
    assert waits_of(7) == waits_of(7)
    assert waits_of(7) != waits_of(8)


def test_budget_exhausts_on_count_with_a_named_one_line_error():
    budget = RetryBudget(view="leads", max_retries=2, max_seconds=100, sleep=lambda s: None)
    exc = RetriableAPIError("x", response_with({}, status=503))
    budget.wait_before_retry(exc)
    budget.wait_before_retry(exc)
    with pytest.raises(RetriesExhausted) as info:
        budget.wait_before_retry(exc)
    assert "'leads'" in str(info.value) and "HTTP 503" in str(info.value)
    assert "\n" not in str(info.value)


def test_budget_exhausts_on_time_before_sleeping_past_it():
    budget = RetryBudget(view="v", max_retries=100, max_seconds=5, sleep=lambda s: None)
    with pytest.raises(RetriesExhausted):
        budget.wait_before_retry(RetriableAPIError("x", response_with({"Retry-After": "60"})))
