from decimal import Decimal

from tap_flowfinity.schema import DELETED_AT, infer_schema
from tap_flowfinity.settings import ViewSettings

# What every integer column declares: the range the tap enforces (bigint in every target).
INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}


def view_settings(**view):
    """A view's settings as a `views[]` item resolves them (tap-wide defaults from the schema)."""
    return ViewSettings.from_config({}, {"name": "v", "url": "http://x/", **view})


VIEW = view_settings(name="leads")


def test_system_fields_have_fixed_types():
    schema = infer_schema(VIEW, [{"RecordID": "000000001", "lastSubmissionId": "5"}])
    props = schema["properties"]
    assert props["RecordID"] == {"type": ["string"]}
    assert props["lastSubmissionId"] == {"type": ["integer"], "minimum": 0, "maximum": 2**63 - 1}
    assert props["State"]["type"] == ["string", "null"]
    assert props[DELETED_AT] == {"type": ["string", "null"], "format": "date-time"}
    assert props["CreatedOn"]["format"] == "date-time"


def test_every_sampled_field_is_kept():
    sample = [
        {"Company": "ABC", "Industry": {"Selection": "Energy"}},
        {"Tags": {"Selection": ["Yes"]}, "Photos": [{"url": "x"}], "Score": Decimal("1.5")},
        {"Empty": None, "Flag": True, "Count": 3},
    ]
    props = infer_schema(VIEW, sample)["properties"]
    for key in ("Company", "Industry", "Tags", "Photos", "Score", "Empty", "Flag", "Count"):
        assert key in props
    assert props["Company"] == {"type": ["string", "null"]}
    assert props["Industry"] == {"type": ["string", "null"]}  # a single choice is text
    assert props["Tags"] == {"type": ["array", "null"], "items": {"type": "string"}}
    assert props["Photos"]["type"] == ["array", "null"]
    assert props["Score"] == {"type": ["number", "null"]}
    assert props["Flag"] == {"type": ["boolean", "null"]}
    assert props["Count"] == {"type": ["integer", "null"], **INT64}
    # empty in the whole sample: text, which takes any later value without loss
    assert props["Empty"] == {"type": ["string", "null"]}


def test_conflicting_types_become_text():
    props = infer_schema(VIEW, [{"A": "x", "B": 1}, {"A": {"k": 1}, "B": Decimal("2.5")}])
    assert props["properties"]["A"] == {"type": ["string", "null"]}
    assert props["properties"]["B"] == {"type": ["number", "null"]}


def test_flattening_off_keeps_choices_as_objects():
    view = view_settings(flatten_selections=False)
    props = infer_schema(view, [{"Industry": {"Selection": "Energy"}}])["properties"]
    assert props["Industry"]["type"] == ["object", "null"]


def test_declared_types_with_side_columns():
    view = view_settings(
        field_types={"EmployeeCount": "integer", "Due": "date", "Notes": "string"},
    )
    props = infer_schema(view, [{"EmployeeCount": "25"}])["properties"]
    assert props["EmployeeCount"] == {"type": ["integer", "null"], **INT64}
    assert props["EmployeeCount__raw"] == {"type": ["string", "null"]}
    # declared but not in the sample: in the schema all the same
    assert props["Due"] == {"type": ["string", "null"], "format": "date"}
    assert "Due__raw" in props
    assert "Notes__raw" not in props  # text takes every value


def test_no_side_columns_when_failing_on_misfits():
    view = view_settings(field_types={"N": "integer"}, on_type_error="fail")
    assert "N__raw" not in infer_schema(view, [])["properties"]


def test_the_same_sample_in_any_order_gives_the_same_schema():
    a = {"Z": "1", "A": {"Selection": ["x"]}, "RecordID": "1", "lastSubmissionId": "2"}
    b = {"M": None, "A": {"Selection": []}, "RecordID": "2", "lastSubmissionId": "3"}
    one = infer_schema(VIEW, [a, b])
    two = infer_schema(VIEW, [dict(reversed(b.items())), dict(reversed(a.items()))])
    assert list(one["properties"].items()) == list(two["properties"].items())


def test_view_overrides_win():
    view = view_settings(schema={"EmployeeCount": {"type": ["integer", "null"]}})
    props = infer_schema(view, [{"EmployeeCount": "25"}])["properties"]
    assert props["EmployeeCount"] == {"type": ["integer", "null"]}


def test_custom_cursor_and_state_fields():
    view = view_settings(cursor_field="Sub", state_field="Status")
    schema = infer_schema(view, [])
    assert schema["properties"]["Sub"] == {"type": ["integer"], "minimum": 0, "maximum": 2**63 - 1}
    assert "Status" in schema["properties"]
    assert schema["required"] == ["RecordID", "Sub"]
