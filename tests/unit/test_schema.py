from decimal import Decimal

from tap_flowfinity.schema import DELETED_AT, infer_schema, property_schema
from tap_flowfinity.settings import ViewSettings

VIEW = ViewSettings(name="leads", url="http://x/")


def test_system_fields_have_fixed_types():
    schema = infer_schema(VIEW, [{"RecordID": "000000001", "lastSubmissionId": "5"}])
    props = schema["properties"]
    assert props["RecordID"] == {"type": ["string"]}
    assert props["lastSubmissionId"] == {"type": ["integer"]}
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
    assert props["Industry"]["type"] == ["object", "null"]
    assert props["Photos"]["type"] == ["array", "null"]
    assert props["Score"] == {"type": ["number", "null"]}
    assert props["Flag"] == {"type": ["boolean", "null"]}
    assert props["Count"] == {"type": ["integer", "null"]}
    assert props["Empty"] == {}


def test_conflicting_types_accept_anything():
    assert property_schema({"string", "object"}) == {}
    assert property_schema({"integer", "number", "null"}) == {"type": ["number", "null"]}


def test_view_overrides_win():
    view = ViewSettings(
        name="v", url="http://x/", schema_overrides={"EmployeeCount": {"type": ["integer", "null"]}}
    )
    props = infer_schema(view, [{"EmployeeCount": "25"}])["properties"]
    assert props["EmployeeCount"] == {"type": ["integer", "null"]}


def test_custom_cursor_and_state_fields():
    view = ViewSettings(name="v", url="http://x/", cursor_field="Sub", state_field="Status")
    schema = infer_schema(view, [])
    assert schema["properties"]["Sub"] == {"type": ["integer"]}
    assert "Status" in schema["properties"]
    assert schema["required"] == ["RecordID", "Sub"]
