"""Keeping the Integration user's password to ourselves, and talking to Flowfinity over TLS.

The password travels only in the Authorization header of view requests. Nothing the tap
prints is built from it, and as a last line of defence every log record and the one-line
error are scrubbed of the password and of its Basic token before they are written.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import typing as t
from urllib.parse import urlsplit

from singer_sdk.exceptions import ConfigValidationError

if t.TYPE_CHECKING:
    from tap_flowfinity.settings import ViewSettings

REDACTED = "***"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

_secrets: set[str] = set()


def secret_forms(username: str | None, password: str | None) -> set[str]:
    """The password and every form of it a request carries (the Basic token and header)."""
    if not password:
        return set()
    token = base64.b64encode(f"{username or ''}:{password}".encode()).decode()
    return {password, token, f"Basic {token}"}


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `***` (longest first)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def protect(username: str, password: str) -> None:
    """Register the configured password for redaction and scrub every later log record."""
    if len(password) < 4:
        return  # too short to redact without mangling unrelated text
    _secrets.update(secret_forms(username, password))
    _install_log_scrubber()


_scrubber_installed = False


def _install_log_scrubber() -> None:
    """Scrub the formatted message of every log record, whichever logger or handler it takes."""
    global _scrubber_installed
    if _scrubber_installed:
        return
    _scrubber_installed = True
    make_record = logging.getLogRecordFactory()

    def scrubbed_record(*args: t.Any, **kwargs: t.Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the handler's to report
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    logging.setLogRecordFactory(scrubbed_record)


def tls_verify(ca_bundle: str | None) -> bool | str:
    """What `requests` should verify server certificates against: a CA bundle, or the default.

    Verification cannot be turned off; a site with a private CA names it in `ca_bundle`
    (or, as for any `requests` client, in REQUESTS_CA_BUNDLE).
    """
    bundle = ca_bundle
    if not bundle:
        # requests' own convention, which `Session.send` (the SDK's path) does not apply.
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    path = os.path.expanduser(str(bundle))
    if not os.path.isfile(path):
        raise ConfigValidationError(
            "Invalid tap-flowfinity settings",
            errors=[f"ca_bundle {bundle!r} is not a readable file: give the path of a PEM file"],
        )
    return path


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine (traffic to it never crosses a network)."""
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_warnings(views: t.Iterable[ViewSettings]) -> list[str]:
    """One warning per view whose password would cross the network unencrypted."""
    warnings = []
    for view in views:
        parts = urlsplit(view.url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            warnings.append(
                f"view {view.name!r}: the url is plain http:// to {parts.hostname}, so the "
                "password crosses the network unencrypted - use the https:// URL of the view"
            )
    return warnings
