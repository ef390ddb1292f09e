"""The tap's CLI surface: `--about` lists every contract setting, errors are one line.

The contract's settings (docs/contract.md) are names users' projects rely on.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.harness.meltano import TAP

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

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


def test_wrong_password_is_one_line_naming_the_view(simulator, tmp_path):
    config = tmp_path / "config.json"
    secret = "Wr0ng-Pa55-for-test"
    config.write_text(
        json.dumps(
            {
                "username": "integration",
                "password": secret,
                "views": [{"name": "leads", "url": simulator.view_url("leads")}],
            }
        )
    )
    result = subprocess.run([TAP, "--config", str(config)], capture_output=True, text=True)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert "view 'leads'" in errors[0] and "HTTP 401" in errors[0]
    assert secret not in result.stderr + result.stdout
