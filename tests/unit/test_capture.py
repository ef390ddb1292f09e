"""Masking keeps a value's shape and none of its content."""

from __future__ import annotations

import re
from decimal import Decimal

from tap_flowfinity.capture import Masker


def test_text_keeps_its_shape():
    masker = Masker(b"k" * 32)
    for value in ["John Smith", "john.smith@example.com", "555-7777", "Zoë", "25", "0-20%"]:
        masked = masker.text(value)
        assert masked != value and len(masked) == len(value)
        for a, b in zip(value, masked, strict=True):
            assert a.isdigit() == b.isdigit() and a.isalpha() == b.isalpha()
            if a.isalpha():
                assert a.isupper() == b.isupper()
            if not a.isalnum():
                assert a == b
    assert masker.text("25")[0] != "0", "a number as text still reads as one"


def test_equal_values_mask_alike_and_keys_differ_per_capture():
    one, other = Masker(b"a" * 32), Masker(b"b" * 32)
    assert one.text("Energy") == one.text("Energy")
    assert one.text("Energy") != other.text("Energy")


def test_date_times_stay_valid_date_times():
    masker = Masker(b"k" * 32)
    for value in ["2020-09-06T00:00:00.000", "2020-02-29", "2021-03-01T09:00:00Z"]:
        masked = masker.text(value)
        assert masked != value
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", masked[:10])
        assert masked[10:] == value[10:]
    assert masker.text("2020-13-45T00:00") != "2020-13-45T00:00", "not a date: masked as text"


def test_structure_types_and_emptiness_are_kept():
    masker = Masker(b"k" * 32)
    value = {"Selection": ["Yes", "No"], "n": 123, "d": Decimal("12.50"), "e": "", "z": None}
    masked = masker.value(value)
    assert list(masked) == list(value)
    assert isinstance(masked["Selection"], list) and len(masked["Selection"]) == 2
    assert isinstance(masked["n"], int) and len(str(masked["n"])) == 3
    assert isinstance(masked["d"], Decimal) and re.fullmatch(r"\d\d\.\d\d", str(masked["d"]))
    assert masked["e"] == "" and masked["z"] is None
    assert masker.value(True) is True
