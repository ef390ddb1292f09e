"""One synchronization view over HTTP, for the stream, discovery, the doctor and capture.

It owns everything about talking to a view: the session (HTTP Basic for the Integration
user, TLS always verified, JSON asked for), the view URL and its parameters, the mapping of
HTTP statuses to a one-line reason and fix, and reading an answer into records with their
cursor parsed. It also owns what a real site may send differently from the documented
defaults, so every caller tolerates the same things in the same way:

- the cursor or state key in another casing (`lastSubmissionID`): the record is read under
  the configured name, so the output's field name and the bookmark stay the same;
- equal submission ids in a row (a multi-record transaction): the order must not decrease;
- "nothing new" as `[]`, `204 No Content`, an empty `200` or `null`; a leading UTF-8
  byte-order mark (parsing.py);
- a view URL copied with the cursor parameter already in it: the parameter is dropped from
  the URL, since the client sends it itself;
- a 401 that asks for another scheme than Basic, and a 405: their own reason and fix.
"""

from __future__ import annotations

import logging
import typing as t
from http import HTTPStatus
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_flowfinity.cursor import parse_cursor
from tap_flowfinity.errors import (
    AccessDenied,
    AuthSchemeNotSupported,
    CredentialsRejected,
    CursorNotFiltering,
    FlowfinityError,
    MethodNotAllowed,
    UnsortedView,
    ViewNotFound,
)
from tap_flowfinity.parsing import iter_records
from tap_flowfinity.security import tls_verify

if t.TYPE_CHECKING:
    from tap_flowfinity.settings import TapSettings, ViewSettings

FIX_URL = (
    "copy the URL from the App Editor (Configure > Integration > REST Integration > Details) "
    "into views[].url"
)
FIX_SORT = "sort the view by Last submission ID, ascending"


def strip_parameter(url: str, parameter: str) -> tuple[str, bool]:
    """`url` without the query parameter `parameter` (any casing), and whether it had one.

    ASP.NET reads query names case-insensitively and joins a repeated parameter's values
    (`0,5000`), so the client must be the only one to send it.
    """
    parts = urlsplit(url)
    if not parts.query:
        return url, False
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k.lower() != parameter.lower()]
    if len(kept) == len(pairs):
        return url, False
    return urlunsplit(parts._replace(query=urlencode(kept))), True


def redacted(url: str) -> str:
    """The URL without query or user info: safe to print."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def auth_schemes(response: requests.Response) -> list[str]:
    """The schemes a 401's `WWW-Authenticate` asks for (e.g. ["NTLM", "Negotiate"])."""
    header = response.headers.get("WWW-Authenticate", "")
    schemes = []
    for challenge in header.split(","):
        word = challenge.strip().split(" ", 1)[0]
        if word and "=" not in word and word not in schemes:
            schemes.append(word)
    return schemes


class ViewClient:
    """Requests to one view and the records of its answers.

    One client per view and run: it remembers which key a record carries the cursor and
    state under (found once, logged once) and whether any record carried the state field.
    """

    def __init__(
        self,
        view: ViewSettings,
        *,
        username: str,
        password: str,
        timeout: float,
        verify: bool | str,
        logger: logging.Logger,
        user_agent: str | None = None,
    ) -> None:
        self.view = view
        self.timeout = timeout
        self.logger = logger
        self.session = requests.Session()
        self.session.auth = (username, password)
        self.session.headers["Accept"] = "application/json"
        if user_agent:
            self.session.headers["User-Agent"] = user_agent
        # Passed with each request: a session's own `verify` loses to REQUESTS_CA_BUNDLE.
        self.verify = verify
        self.url, self.url_had_cursor = strip_parameter(view.url, view.cursor_parameter)
        self.where = redacted(view.url)
        self.state_seen = False
        # A configured field name -> the key records carry it under (None: no key matches).
        self._keys: dict[str, str | None] = {}

    @classmethod
    def for_settings(
        cls,
        settings: TapSettings,
        view: ViewSettings,
        logger: logging.Logger,
        user_agent: str | None = None,
    ) -> ViewClient:
        """The client of `view` with the tap's credentials, timeout and TLS settings."""
        return cls(
            view,
            username=settings.username,
            password=settings.password,
            timeout=float(settings.request_timeout),
            verify=tls_verify(settings.ca_bundle),  # always verified
            logger=logger,
            user_agent=user_agent,
        )

    @property
    def name(self) -> str:
        """The view's (and stream's) name."""
        return self.view.name

    def url_warning(self) -> str | None:
        """What to tell the user when the configured URL carries the cursor parameter."""
        if not self.url_had_cursor:
            return None
        parameter = self.view.cursor_parameter
        return (
            f"view {self.name!r}: views[].url already carries {parameter}; the tap sends "
            f"that parameter itself, so it is left out of the url (remove it from the url "
            "to silence this warning)"
        )

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()

    # Requests

    def request(self, cursor: int | None) -> requests.Response:
        """Ask the view for the records after `cursor` (all, when None); the body streams."""
        return self.session.get(
            self.url,
            params=self.view.query_params(cursor),
            timeout=self.timeout,
            stream=True,
            verify=self.verify,
        )

    def send(self, cursor: int | None) -> requests.Response:
        """`request`, with a failing status raised as the exception it means.

        Raises the one-line FlowfinityError for a status retrying cannot fix, and the SDK's
        RetriableAPIError for 429 and 5xx; network failures raise requests' own exceptions.
        """
        response = self.request(cursor)
        self.check_status(response)
        return response

    def check_status(self, response: requests.Response) -> None:
        """Raise (and close the response) when its status is a failure."""
        error = self.status_error(response)
        if error is not None:
            response.close()
            raise error

    def status_error(self, response: requests.Response) -> Exception | None:
        """The failure an HTTP status means, with its fix (None: not a failure)."""
        status = response.status_code
        if status < HTTPStatus.BAD_REQUEST:
            return None
        if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            return RetriableAPIError(f"view {self.name!r}: HTTP {status}", response)
        where = self.where
        if status == HTTPStatus.UNAUTHORIZED:
            schemes = auth_schemes(response)
            if schemes and not any(s.lower() == "basic" for s in schemes):
                return AuthSchemeNotSupported(
                    self.name,
                    f"the server asks for {' or '.join(schemes)} authentication (HTTP 401 "
                    f"from {where}); the tap signs in with HTTP Basic",
                    "ask the Flowfinity administrator to enable Basic authentication for the "
                    "REST API (on IIS: Basic authentication for the Flowfinity site)",
                )
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
            return ViewNotFound(self.name, f"no view at {where} (HTTP 404)", FIX_URL)
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            allowed = response.headers.get("Allow", "").strip()
            allows = f"; it allows {allowed}" if allowed else ""
            return MethodNotAllowed(
                self.name,
                f"the server does not let the tap read the view with GET (HTTP 405 from "
                f"{where}{allows})",
                f"check that views[].url is the view's REST URL; {FIX_URL}",
            )
        return FlowfinityError(
            self.name,
            f"Flowfinity answered HTTP {status} from {where}",
            f"check views[].url and views[].params, and that cursor_parameter "
            f"({self.view.cursor_parameter!r}) is the view's numeric parameter",
        )

    # Answers

    def records(
        self, response: requests.Response, after: int | None
    ) -> t.Generator[dict[str, t.Any], None, None]:
        """The answer's records, cursor parsed, checked not to go down nor below `after`.

        Closes the response when done (or abandoned). The loop runs per record: kept tight
        (the usual record has both keys as configured: no call beyond the cursor's parse).
        """
        view = self.view
        cursor_field, state_field = view.cursor_field, view.state_field
        previous = after
        state_seen = False
        try:
            if response.status_code == HTTPStatus.NO_CONTENT:
                return
            for record in iter_records(response, self.name):
                if cursor_field in record and state_field in record:
                    state_seen = True
                else:
                    self.adopt_keys(record)
                value = parse_cursor(record, view)
                if previous is not None and value <= previous:
                    error = self.order_error(value, previous, after)
                    if error is not None:
                        raise error
                previous = value
                yield record
        finally:
            if state_seen:
                self.state_seen = True
            response.close()

    def raw_records(self, response: requests.Response) -> t.Generator[dict[str, t.Any], None, None]:
        """The answer's records as sent ("nothing new" in any form: none); closes it."""
        try:
            if response.status_code != HTTPStatus.NO_CONTENT:
                yield from iter_records(response, self.name)
        finally:
            response.close()

    def order_error(self, value: int, previous: int, after: int | None) -> FlowfinityError | None:
        """What a cursor `value` after `previous` means (None: fine; equal ids are fine).

        `after` is the cursor the request asked from: a record at or below it means the
        view ignores the parameter; a decrease means the view is not sorted.
        """
        if previous == after and value <= previous:
            return self._not_filtering(value, previous)
        if value < previous:
            return self._unsorted(value, previous)
        return None

    def cursor_of(self, record: dict[str, t.Any]) -> int:
        """The record's cursor as an int, stored under the configured field name."""
        view = self.view
        if view.cursor_field in record and view.state_field in record:
            self.state_seen = True
        else:
            self.adopt_keys(record)
        return parse_cursor(record, view)

    def adopt_keys(self, record: dict[str, t.Any]) -> None:
        """Move a cursor or state sent under another casing to the configured name."""
        view = self.view
        if view.cursor_field not in record:
            self._adopt_key(record, view.cursor_field, "cursor_field")
        if view.state_field in record or self._adopt_key(record, view.state_field, "state_field"):
            self.state_seen = True

    def renamed_keys(self) -> dict[str, str]:
        """The configured names read from another key so far: {name: key sent}."""
        return {name: key for name, key in self._keys.items() if key is not None}

    def _adopt_key(self, record: dict[str, t.Any], name: str, setting: str) -> bool:
        """Read `name` from the one key that matches it ignoring case; say so once.

        A name no key matched is not looked for again in this run (a view without a state
        field must not cost a scan per record).
        """
        key = self._keys.get(name, "")
        if key is None:
            return False
        if key not in record:
            matches = [k for k in record if k.lower() == name.lower()]
            if len(matches) != 1:
                self._keys[name] = None
                return False
            key = matches[0]
            self._keys[name] = key
            self.logger.warning(
                "View %r: records carry %r, not %r: reading it as %r (the output keeps the "
                "name %r; set %s to %r to silence this warning)",
                self.name,
                key,
                name,
                name,
                name,
                setting,
                key,
            )
        record[name] = record.pop(key)
        return True

    def missing_state_warning(self) -> str:
        """What to say when no record of a run carried the state field."""
        return (
            f"view {self.name!r}: no record carried the state field {self.view.state_field!r}, "
            "so deleted records cannot be flagged - add the workflow State to the view, or "
            "set state_field to the field that holds it"
        )

    def is_deleted(self, record: t.Mapping[str, t.Any]) -> bool:
        """Whether the record's workflow state is one of `deleted_states`."""
        value = record.get(self.view.state_field)
        if type(value) is str:  # the common case, without a call
            return value in self.view.deleted_states
        return state_name(value) in self.view.deleted_states

    def _not_filtering(self, value: int, after: int) -> FlowfinityError:
        name = self.view.cursor_field
        return CursorNotFiltering(
            self.name,
            f"asked for records after {name} {after}, the view returned {value}",
            f"add the filter '{name} is greater than Previous Last Submission ID' OR "
            "'Previous Last Submission ID does not contain data' to the view, and "
            f"check cursor_parameter ({self.view.cursor_parameter!r})",
        )

    def _unsorted(self, value: int, previous: int) -> FlowfinityError:
        name = self.view.cursor_field
        return UnsortedView(
            self.name,
            f"{name} {value} came after {previous}: the view is not sorted ascending",
            FIX_SORT,
        )


def state_name(value: t.Any) -> str | None:
    """A workflow state's name, whether sent as text or as a choice ({"Selection": ...})."""
    if isinstance(value, dict):
        value = value.get("Selection")
    return value if isinstance(value, str) else None
