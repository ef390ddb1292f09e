"""Each Flowfinity encoding and declared type, including the values that do not fit."""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tap_flowfinity.fastpath import JSON_NATIVE_TYPES
from tap_flowfinity.fieldtypes import (
    BOOLEAN,
    CHOICES,
    DATE,
    DATE_TIME,
    INTEGER,
    JSON,
    NUMBER,
    STRING,
    Converter,
    RecordTyper,
    TypeMismatch,
    infer_property,
    kind_of,
    property_for_kind,
    raw_text,
    shape_of,
)

VANCOUVER = ZoneInfo("America/Vancouver")


def convert(kind, value, **kwargs):
    return Converter(kind, **kwargs).convert(value)


# Choices


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Selection": "Energy"}, "Energy"),
        ({"Selection": ""}, ""),  # an empty text choice stays an empty string
        ({"Selection": None}, None),
        ({"Selection": []}, None),  # nothing chosen
        ({"Selection": ["Only"]}, "Only"),
        ({"Selection": ["a", "b"]}, '["a","b"]'),  # kept as JSON text, never dropped
        ("plain", "plain"),
        ("", ""),
        (None, None),
        ("Zoë 🚀 日本", "Zoë 🚀 日本"),
    ],
)
def test_single_choice_and_text(value, expected):
    assert convert(STRING, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Selection": ["Yes"]}, ["Yes"]),
        ({"Selection": ["a", "b"]}, ["a", "b"]),
        ({"Selection": []}, []),  # field present, nothing ticked: not null
        ({"Selection": None}, None),
        (None, None),
        ({"Selection": "one"}, ["one"]),  # a single choice fits an array
        ("one", ["one"]),
    ],
)
def test_multiple_choice_is_an_array_of_text(value, expected):
    assert convert(CHOICES, value) == expected


def test_multiple_choice_misfit():
    with pytest.raises(TypeMismatch):
        convert(CHOICES, {"url": "x"})


def test_flattening_off_keeps_selection_objects():
    assert convert(JSON, {"Selection": ["a"]}, flatten=False) == {"Selection": ["a"]}
    assert convert(STRING, {"Selection": "a"}, flatten=False) == '{"Selection":"a"}'
    # a declared type still reads the choice inside
    assert convert(BOOLEAN, {"Selection": ["Yes"]}, flatten=False) is True


# Declared numbers, booleans, dates


@pytest.mark.parametrize(
    ("value", "expected"),
    [("25", 25), (" 25 ", 25), ("-3", -3), ("25.00", 25), (7, 7), (Decimal("4"), 4), ("", None)],
)
def test_integer(value, expected):
    assert convert(INTEGER, value) == expected


@pytest.mark.parametrize(
    "value", ["twenty", "2.5", "1,000", "1e3", True, Decimal("2.5"), "9223372036854775808", [1]]
)
def test_integer_misfits(value):
    with pytest.raises(TypeMismatch):
        convert(INTEGER, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("99", Decimal("99")),
        ("99.90", Decimal("99.90")),
        ("-0.5", Decimal("-0.5")),
        ("1e3", Decimal("1e3")),
        (Decimal("1.10"), Decimal("1.10")),
        (3, 3),
        ("   ", None),
    ],
)
def test_number_is_exact(value, expected):
    result = convert(NUMBER, value)
    assert result == expected
    assert not isinstance(result, float)
    if isinstance(expected, Decimal):
        assert str(result) == str(expected)  # "99.90" keeps its trailing zero


@pytest.mark.parametrize("value", ["$99", "NaN", "Infinity", "1.2.3", False, {"a": 1}])
def test_number_misfits(value):
    with pytest.raises(TypeMismatch):
        convert(NUMBER, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("Yes", True),
        ("0", False),
        ("off", False),
        (1, True),
        ({"Selection": ["Yes"]}, True),  # a check box
        ({"Selection": []}, False),  # an unticked check box
        ({"Selection": "No"}, False),
        (None, None),
    ],
)
def test_boolean(value, expected):
    assert convert(BOOLEAN, value) is expected


@pytest.mark.parametrize("value", ["maybe", 2, {"Selection": ["Yes", "No"]}])
def test_boolean_misfits(value):
    with pytest.raises(TypeMismatch):
        convert(BOOLEAN, value)


def test_date_time_without_a_zone_stays_as_sent():
    assert convert(DATE_TIME, "2020-09-06T04:37:30.000") == "2020-09-06T04:37:30.000"


def test_date_time_with_a_zone_becomes_utc():
    # PDT (UTC-7) in September, PST (UTC-8) in January
    assert (
        convert(DATE_TIME, "2020-09-06T04:37:30.000", zone=VANCOUVER) == "2020-09-06T11:37:30+00:00"
    )
    assert convert(DATE_TIME, "2021-01-06T04:37:30.250", zone=VANCOUVER) == (
        "2021-01-06T12:37:30.250000+00:00"
    )
    assert convert(DATE_TIME, "2020-09-06", zone=VANCOUVER) == "2020-09-06T07:00:00+00:00"


def test_date_time_with_its_own_offset_is_converted_to_utc_always():
    assert convert(DATE_TIME, "2020-09-06T04:00:00+02:00") == "2020-09-06T02:00:00+00:00"
    assert convert(DATE_TIME, "2020-09-06T04:00:00Z", zone=VANCOUVER) == (
        "2020-09-06T04:00:00+00:00"
    )


@pytest.mark.parametrize(
    "value", ["06/09/2020", "2020-13-45T00:00:00", "yesterday", 20200906, "2020-09-06T25:00"]
)
def test_date_time_misfits(value):
    with pytest.raises(TypeMismatch):
        convert(DATE_TIME, value, zone=VANCOUVER)


def test_date():
    assert convert(DATE, "2020-09-06T00:00:00.000") == "2020-09-06"
    assert convert(DATE, "2020-09-06") == "2020-09-06"
    assert convert(DATE, "2020-09-06T00:00:00.000", zone=VANCOUVER) == "2020-09-06"  # no shift
    with pytest.raises(TypeMismatch):
        convert(DATE, "2020-09-06T13:30:00.000")  # a time of day would be lost


# Text and JSON stay distinct and exact


def test_text_keeps_non_strings_as_exact_json():
    assert convert(STRING, 25) == "25"
    assert convert(STRING, Decimal("1.50")) == "1.50"
    assert convert(STRING, True) == "true"
    assert convert(STRING, {"url": "a.png", "size": 3}) == '{"url":"a.png","size":3}'
    assert convert(STRING, 10**30) == "1" + "0" * 30


def test_json_fields_are_kept_as_sent():
    nested = {"Lat": Decimal("49.28"), "Items": [{"Qty": "2"}], "Note": "", "X": None}
    assert convert(JSON, nested) == nested
    assert convert(JSON, [1, "a"]) == [1, "a"]


def test_raw_text():
    assert raw_text("twenty") == "twenty"
    assert raw_text({"Selection": ["a"]}) == '{"Selection":["a"]}'
    assert raw_text("Zoë") == "Zoë"


# Schema <-> kind


@pytest.mark.parametrize("kind", [STRING, INTEGER, NUMBER, BOOLEAN, DATE_TIME, DATE, CHOICES])
def test_every_kind_round_trips_through_its_schema(kind):
    assert kind_of(property_for_kind(kind)) == kind


def test_multiple_choice_schema_is_a_text_array():
    assert property_for_kind(CHOICES) == {"type": ["array", "null"], "items": {"type": "string"}}


def test_unknown_schemas_are_json():
    assert kind_of({}) == JSON
    assert kind_of({"type": ["object", "null"]}) == JSON
    assert kind_of({"type": ["array", "null"]}) == JSON
    assert kind_of({"type": ["string", "integer"]}) == JSON


# Inference from a sample


def shapes(*values, flatten=True):
    return {shape_of(v, flatten=flatten) for v in values}


def test_inference():
    assert infer_property(shapes({"Selection": "a"}, {"Selection": None})) == property_for_kind(
        STRING
    )
    assert infer_property(shapes({"Selection": []}, {"Selection": "a"})) == property_for_kind(
        CHOICES
    )
    assert infer_property(shapes("25", "30")) == property_for_kind(STRING)  # no guessing
    assert infer_property(shapes(None, {"Selection": None})) == property_for_kind(STRING)
    assert infer_property(shapes(1, Decimal("1.5"))) == property_for_kind(NUMBER)
    assert infer_property(shapes([{"url": "x"}])) == {"type": ["array", "null"]}
    assert infer_property(shapes({"Lat": 1})) == {
        "type": ["object", "null"],
        "additionalProperties": True,
    }
    assert infer_property(shapes("a", {"Lat": 1})) == property_for_kind(STRING)
    assert infer_property(shapes({"Selection": "a"}, flatten=False))["type"] == ["object", "null"]


# A whole record


def test_record_typer_converts_in_place_and_reports_misfits():
    properties = {
        "Industry": property_for_kind(STRING),
        "Tags": property_for_kind(CHOICES),
        "EmployeeCount": property_for_kind(INTEGER),
        "EmployeeCount__raw": {"type": ["string", "null"]},
        "Photo": {"type": ["object", "null"], "additionalProperties": True},
    }
    typer = RecordTyper(flatten=True, zone=None, skip=set())
    row = {
        "Industry": {"Selection": "Energy"},
        "Tags": {"Selection": []},
        "EmployeeCount": "lots",
        "Photo": {"Url": "x"},
    }
    misfits = typer.convert(row, properties)
    assert row == {
        "Industry": "Energy",
        "Tags": [],
        "EmployeeCount": "lots",  # untouched: the stream decides (null + __raw, or fail)
        "Photo": {"Url": "x"},
    }
    assert [(m.field, m.value, m.kind) for m in misfits] == [("EmployeeCount", "lots", INTEGER)]
    assert typer.raw_columns == ("EmployeeCount__raw",)


# Every conversion yields JSON values: the fast path relies on it (records_are_json_native)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["2020-09-06T00:00:00.000", "2020-09-06", " 42 ", "1.5", "yes", ""])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["Selection", "x"]), inner, max_size=2)
    ),
    max_leaves=6,
)
ALL_KINDS = [STRING, JSON, INTEGER, NUMBER, BOOLEAN, DATE_TIME, DATE, CHOICES]


def json_native(value) -> bool:
    if type(value) not in JSON_NATIVE_TYPES:
        return False
    if isinstance(value, dict):
        return all(type(k) is str and json_native(v) for k, v in value.items())
    if isinstance(value, list):
        return all(json_native(v) for v in value)
    return True


@given(json_values, st.sampled_from(ALL_KINDS), st.booleans(), st.sampled_from([None, VANCOUVER]))
def test_every_conversion_of_a_json_value_is_a_json_value(value, kind, flatten, zone):
    try:
        converted = Converter(kind, flatten=flatten, zone=zone).convert(value)
    except TypeMismatch:
        return  # kept raw as text by the stream, or a failure by policy
    assert json_native(converted), (kind, value, converted)


# The typer's compiled handlers against the per-value rules (Converter), record by record

typer_values = json_values | st.sampled_from(
    [
        {"Selection": "a"},
        {"Selection": ["a", "b"]},
        {"Selection": [1, "a"]},
        {"Selection": [{"x": 1}]},
        {"Selection": 5},
        {"Selection": " 2020-09-06T00:00:00 "},
        {"Selection": None},
        "2020-09-06T04:37:30.000",
        "2020-09-06T04:37:30+02:00",
        "2020-02-30T00:00:00",
        "  ",
        ["Yes"],
    ]
)
COLUMN_NAMES = ["a", "b", "c", "d", "e", "f"]


def reference_typing(row, properties, flatten, zone, skip):
    """What RecordTyper.convert must do: Converter.convert on each value of a column."""
    expected, misfits_of_others, misfits_of_text = dict(row), [], {}
    for name, value in row.items():
        schema = properties.get(name)
        if schema is None or name in skip or value is None:
            continue
        kind = kind_of(schema)
        if kind == JSON and not flatten:
            continue
        try:
            expected[name] = Converter(kind, flatten=flatten, zone=zone).convert(value)
        except TypeMismatch as exc:
            if type(value) is str:
                misfits_of_text[name] = (name, value, exc.kind)
            else:
                misfits_of_others.append((name, value, exc.kind))
    order = [name for name in properties if name in misfits_of_text]
    return expected, misfits_of_others + [misfits_of_text[name] for name in order]


@given(
    st.dictionaries(st.sampled_from(COLUMN_NAMES), st.sampled_from(ALL_KINDS), min_size=1),
    st.lists(st.dictionaries(st.sampled_from([*COLUMN_NAMES, "new"]), typer_values), max_size=4),
    st.booleans(),
    st.sampled_from([None, VANCOUVER]),
    st.sets(st.sampled_from(COLUMN_NAMES), max_size=2),
)
def test_the_typer_converts_each_value_as_its_column_kind_says(kinds, rows, flatten, zone, skip):
    properties = {name: property_for_kind(kind) for name, kind in kinds.items()}
    typer = RecordTyper(flatten=flatten, zone=zone, skip=skip)
    for row in rows:  # one typer for many records, as in a stream
        expected, expected_misfits = reference_typing(row, properties, flatten, zone, skip)
        misfits = typer.convert(row, properties)
        assert row == expected
        assert [(m.field, m.value, m.kind) for m in misfits] == expected_misfits


def test_the_typer_follows_a_schema_that_gains_a_column():
    properties = {"a": property_for_kind(STRING)}
    typer = RecordTyper(flatten=True, zone=None, skip=set())
    row = {"a": {"Selection": "x"}, "b": "7"}
    typer.convert(row, properties)
    assert row == {"a": "x", "b": "7"}
    properties["b"] = property_for_kind(INTEGER)  # a field added mid-stream
    row = {"a": {"Selection": "y"}, "b": "7"}
    typer.convert(row, properties)
    assert row == {"a": "y", "b": 7}


@pytest.mark.parametrize(
    "text",
    [
        "2020-09-06T04:37:30.000",  # Flowfinity's form: the typer's shortcut
        "2020-09-06T04:37:30.0001",
        "2020-09-06T04:37:30.00",
        "2020-09-06 04:37:30.000",
        "2020-09-06T04:37:30.000Z",
        "2020-09-06T04:37:30.000+02:00",
        "2020-02-30T04:37:30.000",  # the form, but no such day
        "2020-09-06T24:37:30.000",
        "\uff12\uff10\uff12\uff10-09-06T04:37:30.000",  # digits, but not ASCII ones
        " 2020-09-06T04:37:30.000 ",
    ],
)
@pytest.mark.parametrize("zone", [None, VANCOUVER])
def test_the_typers_date_time_shortcut_agrees_with_the_general_rule(text, zone):
    """The typer matches Flowfinity's own form with a narrower pattern first."""
    properties = {"at": property_for_kind(DATE_TIME)}
    row = {"at": text}
    misfits = RecordTyper(flatten=True, zone=zone, skip=set()).convert(row, properties)
    try:
        expected = convert(DATE_TIME, text, zone=zone)
    except TypeMismatch:
        assert [m.value for m in misfits] == [text] and row == {"at": text}
    else:
        assert not misfits and row == {"at": expected}
