import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_flowfinity.settings import CONFIG_SCHEMA, TapSettings, ViewSettings, resolve_views
from tap_flowfinity.tap import TapFlowfinity


def config(**overrides):
    base = {
        "username": "integration",
        "password": "pw",
        "views": [{"name": "leads", "url": "https://ff.example.com/rest/views/LeadsSync"}],
    }
    base.update(overrides)
    return base


def test_defaults_match_the_contract():
    (view,) = resolve_views(config())
    assert view.cursor_field == "lastSubmissionId"
    assert view.cursor_parameter == "PreviousLastSubmissionId"
    assert view.state_field == "State"
    assert view.deleted_states == frozenset({"Deleted"})
    assert view.params == {}


def test_per_view_settings_override_tap_wide_ones():
    views = [
        {"name": "a", "url": "https://x/a", "cursor_field": "Sub", "deleted_states": ["Gone"]},
        {"name": "b", "url": "https://x/b", "params": {"Region": "West", "Limit": 5}},
    ]
    a, b = resolve_views(config(views=views, state_field="Status", deleted_states=["Removed"]))
    assert (a.cursor_field, a.state_field, a.deleted_states) == ("Sub", "Status", {"Gone"})
    assert (b.cursor_field, b.deleted_states) == ("lastSubmissionId", {"Removed"})
    assert b.params == {"Region": "West", "Limit": "5"}


@pytest.mark.parametrize(
    ("views", "fragment"),
    [
        ([{"name": "a", "url": "https://x/a"}, {"name": "a", "url": "https://x/b"}], "twice"),
        ([{"name": "a", "url": "https:///a"}], "full http(s) URL"),
        ([{"name": "a", "url": "https://u:secret@x/a"}], "not in the url"),
        (
            [{"name": "a", "url": "https://x/a", "params": {"PreviousLastSubmissionId": 1}}],
            "must not set",
        ),
        ([], "at least one"),
    ],
)
def test_bad_views_are_rejected_with_the_reason(views, fragment):
    with pytest.raises(ConfigValidationError) as info:
        resolve_views(config(views=views))
    assert any(fragment in error for error in info.value.errors)
    assert all("secret" not in error for error in info.value.errors)


def test_schema_rejects_missing_views_and_bad_names():
    errors = TapFlowfinity.config_jsonschema
    assert errors["properties"]["views"]["minItems"] == 1
    with pytest.raises(ConfigValidationError):
        TapFlowfinity(config={"username": "u", "password": "p", "views": []})
    with pytest.raises(ConfigValidationError):
        TapFlowfinity(
            config={
                "username": "u",
                "password": "p",
                "views": [{"name": "a-b", "url": "https://x"}],
            }
        )


def test_password_is_marked_secret():
    prop = TapFlowfinity.config_jsonschema["properties"]["password"]
    assert prop.get("secret") is True
    assert prop.get("writeOnly") is True


def test_view_settings_from_config_uses_view_schema_overrides():
    view = ViewSettings.from_config(
        {}, {"name": "v", "url": "https://x", "schema": {"EmployeeCount": {"type": "integer"}}}
    )
    assert view.schema_overrides == {"EmployeeCount": {"type": "integer"}}


@pytest.mark.parametrize(
    ("view", "fragment"),
    [
        ({"name": "lead-s", "url": "https://x/a"}, "config['views'][0]['name']"),
        ({"name": "9leads", "url": "https://x/a"}, "config['views'][0]['name']"),
        ({"name": "a", "url": "ftp://x/a"}, "config['views'][0]['url']"),
        ({"name": "a", "url": "https://x/a", "on_type_error": "skip"}, "'on_type_error'"),
        ({"name": "a", "url": "https://x/a", "field_types": {"N": "int"}}, "'field_types'"),
    ],
)
def test_the_config_schema_checks_each_value_and_names_it(view, fragment):
    """Shapes are the schema's to check (once): the error names the value and where it is."""
    with pytest.raises(ConfigValidationError) as info:
        TapFlowfinity(config=config(views=[view]))
    assert any(fragment in error for error in info.value.errors), info.value.errors


def test_settings_are_typed_and_defaults_come_from_the_schema_only():
    settings = TapSettings.from_config(config())
    properties = CONFIG_SCHEMA["properties"]
    for name in (
        "lookback",
        "state_message_frequency",
        "discovery_sample_size",
        "request_timeout",
        "max_retries",
        "max_retry_seconds",
        "progress_interval",
    ):
        assert getattr(settings, name) == properties[name]["default"], name
    (view,) = settings.views
    assert view.cursor_field == properties["cursor_field"]["default"]
    assert view.flatten_selections is properties["flatten_selections"]["default"]
    assert settings.start_last_submission_id is None and settings.ca_bundle is None


def test_settings_the_sdk_validated_read_the_same():
    """The SDK fills the schema's defaults in; reading them back changes nothing."""
    tap = TapFlowfinity(config=config(lookback=5), setup_mapper=False)  # no discovery
    assert tap.settings == TapSettings.from_config({**config(), **tap.config})
    assert tap.settings.lookback == 5


def test_settings_never_show_the_password():
    settings = TapSettings.from_config(config(password="do-not-print-me"))
    assert "do-not-print-me" not in repr(settings)
    assert "do-not-print-me" not in str(settings)
