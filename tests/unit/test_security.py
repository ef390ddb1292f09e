"""The password never reaches a log line, whichever logger writes it."""

from __future__ import annotations

import base64
import logging

import pytest

from tap_flowfinity.security import protect, redact

PASSWORD = "scrub-me-please-42"
USERNAME = "integration"
TOKEN = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()


@pytest.fixture(autouse=True)
def protected() -> None:
    protect(USERNAME, PASSWORD)


def test_redact_replaces_the_password_and_its_basic_token():
    text = f"sent Authorization: Basic {TOKEN} with {PASSWORD}"
    assert redact(text) == "sent Authorization: *** with ***"


def test_every_log_record_is_scrubbed_whatever_the_logger(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("tap-flowfinity.leads", "urllib3.connectionpool", "some.library"):
        logging.getLogger(name).warning("request failed: %s (Basic %s)", PASSWORD, TOKEN)
    assert len(caplog.records) == 3
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()
        assert TOKEN not in record.getMessage()
        assert "***" in record.getMessage()
    assert PASSWORD not in caplog.text and TOKEN not in caplog.text
