from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_flowfinity.errors import RetriesExhausted
from tap_flowfinity.retries import RetryBudget, retry_after_seconds


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


def test_budget_backs_off_exponentially_with_jitter():
    slept = []
    budget = RetryBudget(view="v", max_retries=10, max_seconds=10_000, sleep=slept.append)
    for _ in range(6):
        budget.wait_before_retry(ConnectionResetError())
    caps = [1, 2, 4, 8, 16, 32]
    assert all(0 <= wait <= cap for wait, cap in zip(slept, caps, strict=False))


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
