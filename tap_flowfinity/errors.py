"""Failures a user can act on, each a single line that names the view.

They subclass the SDK's own fatal and retriable errors, so the SDK's retry machinery and
the exit status behave as for any other tap, while the message is ours.
"""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError, RetriableAPIError


class FlowfinityError(FatalAPIError):
    """A fatal problem with one view: the message says which view, what happened, what to do."""

    def __init__(self, view: str, problem: str, fix: str = "") -> None:
        self.view = view
        self.problem = problem
        self.fix = fix
        message = f"view {view!r}: {problem}"
        if fix:
            message += f" - {fix}"
        super().__init__(message)


class CredentialsRejected(FlowfinityError):
    """HTTP 401: the Integration user or its password is wrong."""


class AuthSchemeNotSupported(FlowfinityError):
    """HTTP 401 asking for another scheme than Basic (NTLM, Negotiate, Bearer)."""


class MethodNotAllowed(FlowfinityError):
    """HTTP 405: the server does not answer the view with GET."""


class AccessDenied(FlowfinityError):
    """HTTP 403: the user exists but may not query this view."""


class ViewNotFound(FlowfinityError):
    """HTTP 404 or an unreachable host: the configured URL is not a view."""


class MalformedResponse(FlowfinityError):
    """The body is not the JSON array of flat records a synchronization view returns."""


class UnsortedView(FlowfinityError):
    """Cursors went down (or repeated): the view is not sorted by Last submission ID."""


class CursorNotFiltering(FlowfinityError):
    """The view answered a cursor request with records at or below the cursor."""


class RetriesExhausted(FlowfinityError):
    """Transient failures outlasted the retry budget."""


class TruncatedResponse(RetriableAPIError):
    """The body ended (or the connection dropped) before the JSON array was complete.

    Every record parsed before the cut was complete and may be kept; the request is
    repeated from the last cursor emitted.
    """
