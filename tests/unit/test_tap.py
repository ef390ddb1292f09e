"""The tap's CLI surface: `--about` lists every contract setting, errors are one line.

The contract's settings (docs/contract.md) are names users' projects rely on.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_flowfinity.errors import FlowfinityError
from tap_flowfinity.security import protect
from tap_flowfinity.tap import TapFlowfinity, exit_invalid_settings
from tests.harness.meltano import TAP

CONTRACT_SETTINGS = {
    "username",
    "password",
    "views",
    "cursor_field",
    "cursor_parameter",
    "state_field",
    "deleted_states",
    "start_last_submission_id",
}
PER_VIEW = {"name", "url", "params", "cursor_field", "cursor_parameter", "state_field"}


def test_about_lists_every_contract_setting():
    out = subprocess.run(
        [TAP, "--about", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    about = json.loads(out)
    settings = about["settings"]["properties"]
    assert set(settings) >= CONTRACT_SETTINGS
    assert PER_VIEW | {"deleted_states"} <= set(settings["views"]["items"]["properties"])
    assert settings["password"]["secret"] is True
    assert settings["cursor_field"]["default"] == "lastSubmissionId"
    assert settings["cursor_parameter"]["default"] == "PreviousLastSubmissionId"
    assert settings["state_field"]["default"] == "State"
    assert settings["deleted_states"]["default"] == ["Deleted"]
    assert {"state", "catalog", "discover", "about", "stream-maps"} <= set(about["capabilities"])


@pytest.fixture
def secret_registered(monkeypatch):
    """A registered password, the CLI's error hook installed, and both undone afterwards."""
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(logging, "shutdown", lambda: None)  # the hook ends logging: not here
    password = "one-line-secret-77"
    protect("integration", password)
    TapFlowfinity.get_singer_command()  # installs the hook
    return password


def test_the_one_line_error_never_shows_the_password(secret_registered, capsys):
    password = secret_registered
    error = FlowfinityError("leads", f"the server echoed {password} back", "check the url")
    sys.excepthook(type(error), error, None)
    err = capsys.readouterr().err
    assert err.startswith("tap-flowfinity: error: view 'leads': the server echoed *** back")
    assert password not in err


def test_invalid_settings_never_show_the_password(secret_registered, capsys):
    password = secret_registered
    error = ConfigValidationError("bad", errors=[f"'{password}' is not of type 'integer'"])
    with pytest.raises(SystemExit):
        exit_invalid_settings(error)
    err = capsys.readouterr().err
    assert "'***' is not of type 'integer'" in err
    assert password not in err
