from decimal import Decimal

import pytest

from tap_flowfinity.cursor import parse_cursor
from tap_flowfinity.errors import MalformedResponse
from tap_flowfinity.settings import ViewSettings

VIEW = ViewSettings.from_config({}, {"name": "leads", "url": "http://127.0.0.1/v"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("18734521", 18734521),
        (" 42 ", 42),
        (18734521, 18734521),
        (Decimal("7"), 7),
        ("9223372036854775807", 2**63 - 1),
        ("000123", 123),
    ],
)
def test_cursor_becomes_exact_int(raw, expected):
    record = {"RecordID": "000000001", "lastSubmissionId": raw}
    assert parse_cursor(record, VIEW) == expected
    assert record["lastSubmissionId"] == expected
    assert type(record["lastSubmissionId"]) is int


@pytest.mark.parametrize("raw", ["9223372036854775808", 2**64, -3])
def test_cursor_beyond_the_schemas_range_is_refused(raw):
    with pytest.raises(MalformedResponse, match=r"outside 0\.\.9223372036854775807"):
        parse_cursor({"RecordID": "000000042", "lastSubmissionId": raw}, VIEW)


def test_numeric_not_lexical_order():
    small = parse_cursor({"lastSubmissionId": "999"}, VIEW)
    large = parse_cursor({"lastSubmissionId": "1000"}, VIEW)
    assert small < large


@pytest.mark.parametrize("raw", ["", "12a", "1.5", "-3", True, 1.5, Decimal("NaN"), {"x": 1}, "١٢"])
def test_non_numeric_cursor_names_view_and_record(raw):
    with pytest.raises(MalformedResponse) as info:
        parse_cursor({"RecordID": "000000042", "lastSubmissionId": raw}, VIEW)
    message = str(info.value)
    assert "'leads'" in message
    assert "000000042" in message
    assert "\n" not in message


def test_missing_cursor_tells_how_to_fix():
    with pytest.raises(MalformedResponse, match="Last submission ID"):
        parse_cursor({"RecordID": "1"}, VIEW)


def test_custom_cursor_field():
    view = ViewSettings.from_config({}, {"name": "v", "url": "http://x/", "cursor_field": "SubId"})
    assert parse_cursor({"SubId": "5"}, view) == 5
