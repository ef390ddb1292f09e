"""The view client's tolerances, without a server: URL parameters, statuses, keys, order."""

from __future__ import annotations

import io
import logging

import pytest
import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_flowfinity.client import ViewClient, auth_schemes, strip_parameter
from tap_flowfinity.errors import (
    AuthSchemeNotSupported,
    CredentialsRejected,
    CursorNotFiltering,
    MethodNotAllowed,
    UnsortedView,
)
from tap_flowfinity.settings import ViewSettings

URL = "https://site.example/Flowfinity/api/rest/v1/App/views/Sync"


def view(url: str = URL, **overrides) -> ViewSettings:
    settings = {
        "name": "leads",
        "url": url,
        "params": {},
        "cursor_field": "lastSubmissionId",
        "cursor_parameter": "PreviousLastSubmissionId",
        "state_field": "State",
        "deleted_states": frozenset({"Deleted"}),
        "deleted_at_field": None,
        "schema_overrides": {},
        "field_types": {},
        "flatten_selections": True,
        "timezone": None,
        "on_type_error": "keep_raw",
    }
    return ViewSettings(**{**settings, **overrides})


def client(url: str = URL, logger: logging.Logger | None = None, **overrides) -> ViewClient:
    return ViewClient(
        view(url, **overrides),
        username="u",
        password="p",
        timeout=5,
        verify=True,
        logger=logger or logging.getLogger("test"),
    )


def response(status: int, body: bytes = b"", **headers: str) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer.headers.update(headers)
    answer.raw = io.BytesIO(body)
    return answer


@pytest.mark.parametrize(
    ("url", "stripped"),
    [
        (URL + "?PreviousLastSubmissionId=0", URL),
        (URL + "?previouslastsubmissionid=", URL),
        (URL + "?Mode=x&PreviousLastSubmissionId=5000&b=2", URL + "?Mode=x&b=2"),
    ],
)
def test_the_cursor_parameter_is_taken_out_of_the_url(url, stripped):
    assert strip_parameter(url, "PreviousLastSubmissionId") == (stripped, True)
    warning = client(url).url_warning()
    assert warning is not None and "'leads'" in warning and "PreviousLastSubmissionId" in warning


def test_a_url_without_the_parameter_is_left_alone():
    assert strip_parameter(URL + "?Mode=x", "PreviousLastSubmissionId") == (URL + "?Mode=x", False)
    assert client(URL + "?Mode=x").url_warning() is None


@pytest.mark.parametrize(
    ("header", "schemes"),
    [
        ("NTLM", ["NTLM"]),
        ("Negotiate, NTLM", ["Negotiate", "NTLM"]),
        ('Bearer realm="api", error="invalid_token"', ["Bearer"]),
        ('Basic realm="Flowfinity"', ["Basic"]),
    ],
)
def test_auth_schemes_of_a_challenge(header, schemes):
    assert auth_schemes(response(401, **{"WWW-Authenticate": header})) == schemes


def test_statuses_map_to_their_reason_and_fix():
    c = client()
    ntlm = c.status_error(response(401, **{"WWW-Authenticate": "Negotiate, NTLM"}))
    assert isinstance(ntlm, AuthSchemeNotSupported)
    assert "Negotiate or NTLM authentication" in str(ntlm) and "Basic" in ntlm.fix
    basic = c.status_error(response(401, **{"WWW-Authenticate": 'Basic realm="x"'}))
    assert isinstance(basic, CredentialsRejected)
    assert isinstance(c.status_error(response(401)), CredentialsRejected)
    post = c.status_error(response(405, Allow="POST"))
    assert isinstance(post, MethodNotAllowed) and "allows POST" in str(post)
    assert isinstance(c.status_error(response(503)), RetriableAPIError)
    assert c.status_error(response(204)) is None


def test_records_of_a_204_are_none():
    assert list(client().records(response(204), 5)) == []


def test_cursor_and_state_in_another_casing_are_read_under_the_configured_names(caplog):
    c = client(logger=logging.getLogger("test.casing"))
    records = [
        {"RecordID": "1", "lastSubmissionID": "10", "state": "Open"},
        {"RecordID": "2", "lastSubmissionID": "10", "state": "Deleted"},
        {"RecordID": "3", "lastSubmissionID": "12", "state": "Open"},
    ]
    with caplog.at_level(logging.WARNING):
        cursors = [c.cursor_of(record) for record in records]
    assert cursors == [10, 10, 12]
    assert records[1] == {"RecordID": "2", "lastSubmissionId": 10, "State": "Deleted"}
    assert c.is_deleted(records[1]) and not c.is_deleted(records[0])
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, "once per field and run"
    assert "set cursor_field to 'lastSubmissionID'" in warnings[0]
    assert c.renamed_keys() == {"lastSubmissionId": "lastSubmissionID", "State": "state"}
    assert c.state_seen


def test_an_ambiguous_casing_is_not_guessed():
    c = client()
    record = {"RecordID": "1", "lastsubmissionid": "1", "LASTSUBMISSIONID": "2"}
    with pytest.raises(Exception, match="has no 'lastSubmissionId'"):
        c.cursor_of(record)
    assert not c.state_seen


def test_equal_ids_are_in_order_a_decrease_is_not():
    c = client()
    assert c.order_error(10, 10, None) is None
    assert c.order_error(10, 10, 9) is None
    assert isinstance(c.order_error(9, 10, None), UnsortedView)
    assert isinstance(c.order_error(10, 10, 10), CursorNotFiltering)
