"""A misspelled setting is named with the closest known one instead of being ignored silently."""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import typing as t

import pytest
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import PluginCapabilities

from tap_flowfinity.tap import TapFlowfinity
from tap_flowfinity.unknown_settings import (
    check_supported,
    known_settings,
    unknown_setting_warnings,
)
from tests.harness.meltano import TAP

SCHEMA = TapFlowfinity.final_config_schema()
# Loopback port 9 (discard): nothing in these tests reads a view.
URL = "http://127.0.0.1:9/Flowfinity/api/rest/v1/LeadRegistration/views/LeadsSync"


def config(**settings: t.Any) -> dict[str, t.Any]:
    return {"username": "integration", "password": "pw", **settings}


def test_a_misspelled_top_level_and_view_setting_are_named_with_the_closest_setting():
    views = [{"name": "leads", "url": URL, "cursor_feild": "SubmissionId"}]
    warnings = unknown_setting_warnings(config(views=views, lookbak=5000), SCHEMA)
    assert warnings == [
        "Unknown setting 'lookbak' (did you mean 'lookback'?): it is ignored",
        "Unknown setting 'cursor_feild' in view 'leads' (did you mean 'cursor_field'?): "
        "it is ignored",
    ]


def test_every_setting_the_final_schema_declares_is_known():
    """The tap's settings and the SDK's built-ins, at the top level and in a view."""
    top, per_view = known_settings(SCHEMA)
    every = {key: None for key in top}
    every["views"] = [{key: None for key in per_view}]
    assert unknown_setting_warnings(every, SCHEMA) == []
    # The SDK's built-ins come from the schema the SDK extends, not from a list here.
    assert {"stream_maps", "stream_map_config", "faker_config"} <= top
    assert "batch_config" not in top  # refused instead: the tap does not declare BATCH
    assert {"flattening_enabled", "flattening_max_depth"} <= top
    assert "user_agent" in top  # the SDK's REST stream reads it; the tap sends it


def test_a_setting_added_to_the_schema_is_known_without_another_list():
    schema = copy.deepcopy(SCHEMA)
    assert unknown_setting_warnings(config(views=[], new_setting=1), schema)
    schema["properties"]["new_setting"] = {"type": "number"}
    schema["properties"]["views"]["items"]["properties"]["new_view_setting"] = {"type": "number"}
    views = [{"name": "leads", "url": URL, "new_view_setting": 2}]
    assert unknown_setting_warnings(config(views=views, new_setting=1), schema) == []


def test_a_setting_in_the_wrong_place_says_where_it_belongs():
    views = [{"name": "leads", "url": URL, "lookback": 10}, {"url": URL, "Url": URL}]
    warnings = unknown_setting_warnings(config(views=views, params={"Region": "West"}), SCHEMA)
    assert warnings == [
        "Unknown setting 'params' (params is a per-view setting: set it in views[]): it is ignored",
        "Unknown setting 'lookback' in view 'leads' (lookback is a tap-wide setting: set it "
        "at the top level): it is ignored",
        "Unknown setting 'Url' in views[1] (did you mean 'url'?): it is ignored",
    ]


def test_a_key_like_no_setting_points_to_the_list():
    (warning,) = unknown_setting_warnings(config(views=[], comment="nightly"), SCHEMA)
    assert warning == (
        "Unknown setting 'comment' (`tap-flowfinity --about` lists the settings): it is ignored"
    )


def test_start_date_is_refused_with_the_fix():
    """The SDK would start each stream from the date, which is no submission id."""
    with pytest.raises(ConfigValidationError) as info:
        check_supported(config(start_date="2024-01-01T00:00:00Z"))
    (error,) = info.value.errors
    assert error.startswith("start_date: ") and "start_last_submission_id" in error


def test_batch_config_is_refused_and_batch_is_not_advertised():
    """BATCH mode would break the bookmark and selection guarantees: refused, not ignored."""
    with pytest.raises(ConfigValidationError) as info:
        check_supported(config(batch_config={"encoding": {"format": "jsonl"}}))
    (error,) = info.value.errors
    assert error.startswith("batch_config: ") and "remove batch_config" in error
    assert PluginCapabilities.BATCH not in TapFlowfinity.capabilities
    assert "batch_config" not in TapFlowfinity.final_config_schema()["properties"]


def test_start_date_on_the_command_line_is_one_line(tmp_path):
    path = tmp_path / "config.json"
    views = [{"name": "leads", "url": URL}]
    path.write_text(json.dumps(config(views=views, start_date="2024-01-01T00:00:00Z")))
    result = subprocess.run(
        [TAP, "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert line.startswith("tap-flowfinity: error: invalid settings: start_date: "), line


def catalog_of(view: str) -> dict[str, t.Any]:
    """A one-stream catalog, so that setting up the stream reads nothing from the view."""
    schema = {"type": "object", "properties": {"RecordID": {"type": "string"}}}
    return {
        "streams": [
            {
                "tap_stream_id": view,
                "stream": view,
                "schema": schema,
                "key_properties": ["RecordID"],
                "metadata": [{"breadcrumb": [], "metadata": {"selected": True}}],
            }
        ]
    }


def test_the_tap_warns_once_when_it_sets_up_its_streams(caplog):
    views = [{"name": "leads", "url": URL, "deleted_state": ["Removed"]}]
    with caplog.at_level(logging.WARNING):
        tap = TapFlowfinity(config=config(views=views, lookbak=5000), catalog=catalog_of("leads"))
        assert list(tap.streams) == ["leads"]
        assert list(tap.streams) == ["leads"]  # set up once: warned once
    unknown = [r.getMessage() for r in caplog.records if "Unknown setting" in r.getMessage()]
    assert unknown == [
        "Unknown setting 'lookbak' (did you mean 'lookback'?): it is ignored",
        "Unknown setting 'deleted_state' in view 'leads' (did you mean 'deleted_states'?): "
        "it is ignored",
    ]


def test_a_correct_config_warns_nothing(caplog):
    views = [{"name": "leads", "url": URL, "cursor_field": "lastSubmissionID", "params": {}}]
    settings = config(views=views, lookback=10, stream_maps={}, flattening_enabled=False)
    with caplog.at_level(logging.WARNING):
        assert list(TapFlowfinity(config=settings, catalog=catalog_of("leads")).streams)
    assert not [r for r in caplog.records if "Unknown setting" in r.getMessage()]
