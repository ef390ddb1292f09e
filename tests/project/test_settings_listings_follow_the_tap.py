"""Meltano polish kept honest: the README's settings table, meltano.yml's settings and the Hub
plugin definition all follow the tap's own settings."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tap_flowfinity.settings import CONFIG_SCHEMA
from tests.harness.meltano import REPO_ROOT

HUB_FILE = REPO_ROOT / "plugins" / "extractors" / "tap-flowfinity--flowfinity.yml"


def meltano_settings() -> list[dict]:
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-flowfinity")
    return tap["settings"]


def test_readme_settings_table_is_generated_from_about():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "settings_table.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_meltano_yml_declares_every_tap_setting_with_its_label_and_default():
    properties = CONFIG_SCHEMA["properties"]
    settings = {s["name"]: s for s in meltano_settings()}
    assert set(settings) == set(properties)
    for name, setting in settings.items():
        assert setting.get("label") == properties[name].get("title"), name
        assert setting.get("description"), name
        if "default" in properties[name] and properties[name]["default"] is not None:
            assert setting.get("value") == properties[name]["default"], name
    assert settings["password"].get("sensitive") is True


def test_hub_definition_matches_meltano_yml():
    hub = yaml.safe_load(HUB_FILE.read_text())
    assert hub["name"] == "tap-flowfinity" and hub["namespace"] == "tap_flowfinity"
    assert {"name", "variant", "label", "description", "pip_url", "capabilities"} <= set(hub)
    assert hub["settings"] == meltano_settings()
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-flowfinity")
    assert hub["capabilities"] == tap["capabilities"]
    assert hub["commands"] == tap["commands"]
