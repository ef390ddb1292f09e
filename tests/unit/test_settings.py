import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_flowfinity.settings import ViewSettings, resolve_views
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
        ([{"name": "lead-s", "url": "https://x/a"}], "letters, digits"),
        ([{"name": "9leads", "url": "https://x/a"}], "letters, digits"),
        ([{"name": "a", "url": "https://x/a"}, {"name": "a", "url": "https://x/b"}], "twice"),
        ([{"name": "a", "url": "ftp://x/a"}], "full http(s) URL"),
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
