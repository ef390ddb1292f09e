import io
import itertools
import json
from decimal import Decimal

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.exceptions import ProtocolError

from tap_flowfinity.errors import MalformedResponse, TruncatedResponse
from tap_flowfinity.parsing import iter_records


def response_of(body: bytes, content_type: str = "application/json", status: int = 200):
    response = requests.Response()
    response.status_code = status
    response.headers["Content-Type"] = content_type
    response.raw = io.BytesIO(body)
    return response


class _DroppingRaw:
    """A raw stream that sends some bytes, then loses the connection."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, chunk_size, decode_content=True):
        yield self.body
        raise ProtocolError("Connection broken: IncompleteRead")


def test_records_in_order():
    records = list(iter_records(response_of(b' [{"a": 1}, {"a": 2}] '), "v"))
    assert records == [{"a": 1}, {"a": 2}]


def test_empty_array():
    assert list(iter_records(response_of(b"[]"), "v")) == []


def test_unicode_and_nested_values_kept():
    body = '[{"t": "Zoë 🚀", "e": "", "n": null, "o": {"Selection": ["Yes"]}}]'.encode()
    assert list(iter_records(response_of(body), "v")) == [
        {"t": "Zoë 🚀", "e": "", "n": None, "o": {"Selection": ["Yes"]}}
    ]


def test_html_page_is_malformed_and_named():
    body = b"<!DOCTYPE html><html><body>Please log in</body></html>"
    with pytest.raises(MalformedResponse, match="HTML page") as info:
        list(iter_records(response_of(body, "text/html"), "leads"))
    assert "'leads'" in str(info.value)
    assert "\n" not in str(info.value)


def test_json_object_is_malformed():
    with pytest.raises(MalformedResponse, match="JSON object"):
        list(iter_records(response_of(b'{"error": "nope"}'), "v"))


def test_array_of_non_objects_is_malformed():
    with pytest.raises(MalformedResponse, match="not a record object"):
        list(iter_records(response_of(b"[1, 2]"), "v"))


def test_invalid_json_is_malformed_after_good_records():
    seen = []
    with pytest.raises(MalformedResponse, match="not valid JSON"):
        for record in iter_records(response_of(b'[{"a": 1}, {"a": zz}]'), "v"):
            seen.append(record)
    assert seen == [{"a": 1}]


def test_cut_off_array_is_truncated_and_keeps_complete_records():
    seen = []
    with pytest.raises(TruncatedResponse):
        for record in iter_records(response_of(b'[{"a": 1}, {"a": 2}, {"a": '), "v"):
            seen.append(record)
    assert seen == [{"a": 1}, {"a": 2}]


def test_empty_body_is_truncated():
    with pytest.raises(TruncatedResponse):
        list(iter_records(response_of(b""), "v"))


def test_dropped_connection_is_truncated():
    response = response_of(b"")
    response.raw = _DroppingRaw(b'[{"a": 1}, {"a": 2')
    seen = []
    with pytest.raises(TruncatedResponse):
        for record in iter_records(response, "v"):
            seen.append(record)
    assert seen == [{"a": 1}]


# -- the incremental scanner against the reference parser, chunk boundaries anywhere ------


class _ChunkedRaw:
    """A raw stream that delivers the body in the given pieces."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def stream(self, chunk_size, decode_content=True):
        yield from self.pieces


def chunked(body: bytes, cuts: list[int]):
    bounds = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    response = response_of(b"")
    response.raw = _ChunkedRaw([body[a:b] for a, b in itertools.pairwise(bounds) if b > a])
    return response


def reference(body: bytes):
    return json.loads(body, parse_float=Decimal)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
records = st.lists(st.dictionaries(st.text(max_size=6), values, max_size=5), max_size=6)
layouts = st.sampled_from(
    [
        {},
        {"indent": 2},
        {"separators": (",", ":")},
        {"ensure_ascii": False},
        {"indent": "\t", "ensure_ascii": False},
    ]
)


def encode(rows, layout) -> bytes:
    return json.dumps(rows, default=str, **layout).encode()


@settings(max_examples=150, deadline=None)
@given(records, layouts, st.lists(st.integers(min_value=0), max_size=12))
def test_any_chunking_yields_what_the_reference_parser_reads(rows, layout, cuts):
    body = encode(rows, layout)
    assert list(iter_records(chunked(body, cuts), "v")) == reference(body)


@settings(max_examples=60, deadline=None)
@given(records.filter(bool), layouts, st.data())
def test_a_body_cut_anywhere_is_truncated_never_malformed(rows, layout, data):
    body = encode(rows, layout).rstrip()
    whole = reference(body)
    cut = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    cuts = data.draw(st.lists(st.integers(min_value=0), max_size=6))
    seen = []
    with pytest.raises(TruncatedResponse):
        for record in iter_records(chunked(body[:cut], cuts), "v"):
            seen.append(record)
    assert seen == whole[: len(seen)]


def test_every_cut_of_a_tricky_body_is_truncated():
    rows = [
        {"s": 'q"uo\\te \u00e9 \U0001f680 \\u0041', "n": -12.5e-3, "i": 12345678901234567890},
        {"t": True, "f": False, "z": None, "o": {"Selection": ["a", "b"]}, "e": ""},
    ]
    for layout in ({}, {"ensure_ascii": False}, {"indent": 1}):
        body = json.dumps(rows, **layout).encode()
        for cut in range(len(body)):
            with pytest.raises(TruncatedResponse):
                list(iter_records(chunked(body[:cut], [cut // 2, cut - 1]), "v"))


@pytest.mark.parametrize(
    "body",
    [
        b'[{"a": 1} {"a": 2}]',  # a missing comma
        b'[{"a": 1},, {"a": 2}]',
        b'[{"a": 1},]',  # a trailing comma
        b'[{"a": NaN}]',  # not JSON, though Python's json would take it
        b'[{"a": Infinity}]',
        b'[{"a": 1}] [{"b": 2}]',  # data after the array
        b'[{"a": tru}, {"b": 2}]',
        b'[{"a": "x' + b"\xff" + b'"}]',  # not UTF-8
        b'[{"a": "tab\there"}]',  # a raw control character in a string
    ],
)
def test_syntax_errors_are_malformed_whatever_the_chunking(body):
    for cuts in ([], [1], list(range(len(body)))):
        with pytest.raises(MalformedResponse):
            list(iter_records(chunked(body, cuts), "v"))


def test_a_syntax_error_far_from_the_end_is_found_without_reading_the_rest():
    pieces = [b'[{"a": 1}, {"a": zz}, ', *([b'{"b": 2}, '] * 100_000)]
    reads = []

    class CountingRaw:
        def stream(self, chunk_size, decode_content=True):
            for piece in pieces:
                reads.append(piece)
                yield piece

    response = response_of(b"")
    response.raw = CountingRaw()
    with pytest.raises(MalformedResponse):
        list(iter_records(response, "v"))
    assert len(reads) < 10


def test_a_large_record_split_in_small_chunks_is_read_in_few_scans():
    body = json.dumps([{"big": "x" * 2_000_000}, {"a": 1}]).encode()
    assert list(iter_records(chunked(body, list(range(0, len(body), 1000))), "v")) == reference(
        body
    )


# -- runs: the records complete in the buffer decoded in one call ----------------------------

# A view's records all start with the same key; values that may hold that key's opening
# again (a nested object), a lone surrogate (refused by the run decoder, taken by the
# scanner) or the opening's text inside a string.
run_values = st.recursive(
    scalars | st.sampled_from(["\ud800", '{"id": 1}, {"id"', "}, {", "\\", ""]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["id", "x"]), inner, max_size=2)
    ),
    max_leaves=6,
)
view_records = st.lists(
    st.builds(
        lambda first, rest: {"id": first, **rest},
        run_values,
        st.dictionaries(st.sampled_from(["a", "b", "id2"]), run_values, max_size=3),
    ),
    min_size=1,
    max_size=12,
)


def encode_view(rows, layout) -> bytes:
    """As `encode`; a lone surrogate can only be sent escaped (ensure_ascii)."""
    text = json.dumps(rows, default=str, **layout)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(rows, default=str, **{**layout, "ensure_ascii": True}).encode()


@pytest.fixture
def runs(monkeypatch):
    """Counts the records decoded as runs, so a test knows that path was taken."""
    from tap_flowfinity import parsing

    decoded: list[int] = []
    real = parsing._decode_run

    def counting(text):
        run = real(text)
        decoded.append(len(run))
        return run

    monkeypatch.setattr(parsing, "_decode_run", counting)
    return decoded


@settings(max_examples=120, deadline=None)
@given(view_records, layouts, st.lists(st.integers(min_value=0), max_size=8))
def test_a_view_read_in_runs_yields_what_the_reference_parser_reads(rows, layout, cuts):
    body = encode_view(rows, layout)
    assert list(iter_records(chunked(body, cuts), "v")) == reference(body)


@settings(max_examples=40, deadline=None)
@given(view_records, layouts, st.data())
def test_a_view_read_in_runs_and_cut_anywhere_is_truncated_after_the_same_records(
    rows, layout, data
):
    body = encode_view(rows, layout).rstrip()
    cut = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    cuts = data.draw(st.lists(st.integers(min_value=0), max_size=4))
    seen = []
    with pytest.raises(TruncatedResponse):
        for record in iter_records(chunked(body[:cut], cuts), "v"):
            seen.append(record)
    assert seen == reference(body)[: len(seen)]


def test_a_long_view_is_decoded_in_runs(runs):
    rows = [{"id": i, "name": f"n{i}", "price": "1.50", "o": {"id": i}} for i in range(999)]
    body = json.dumps(rows, default=str).replace('"1.50"', "1.50").encode()
    assert list(iter_records(chunked(body, list(range(0, len(body), 4000))), "v")) == reference(
        body
    )
    assert sum(runs) > 900  # all but the records cut by a chunk's end


@pytest.mark.parametrize(
    "body",
    [
        b'[{"a": 1}, {"a": 2},, {"a": 3}, {"a": 4}]',
        b'[{"a": 1}, {"a": 2}, 3, {"a": 4}]',
        b'[{"a": 1}, {"a": 2}, {"a": NaN}, {"a": 4}]',
        b'[{"a": 1}, {"a": 2} {"a": 3}, {"a": 4}]',
    ],
)
def test_a_run_with_an_error_leaves_it_to_the_scanner(body):
    seen = []
    with pytest.raises(MalformedResponse):
        for record in iter_records(chunked(body, []), "v"):
            seen.append(record)
    assert seen == [{"a": 1}, {"a": 2}]


def test_non_integer_numbers_are_exact_decimals_never_floats():
    """A float would turn 12345678901234567.89 into 1.2345678901234568e16, silently."""
    body = b'[{"big": 12345678901234567.89, "tenth": 0.1, "exp": 1.5E+3, "int": 7}]'
    (record,) = iter_records(response_of(body), "v")
    assert type(record["big"]) is Decimal
    assert str(record["big"]) == "12345678901234567.89"
    assert type(record["tenth"]) is Decimal and record["tenth"] == Decimal("0.1")
    assert record["exp"] == Decimal("1.5E+3")
    assert type(record["int"]) is int


# -- what a real site may send instead of the documented defaults ------------------------


def test_a_leading_byte_order_mark_is_skipped():
    body = b'\xef\xbb\xbf[{"a": 1}]'
    assert list(iter_records(response_of(body), "v")) == [{"a": 1}]


def test_a_byte_order_mark_split_across_chunks_is_skipped():
    response = response_of(b"")
    response.raw = _ChunkedRaw([b"\xef", b"\xbb", b'\xbf[{"a": 1}', b"]"])
    assert list(iter_records(response, "v")) == [{"a": 1}]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"", {"Content-Length": "0"}),
        (b"", {"Transfer-Encoding": "chunked"}),
        (b"null", {}),
        (b" null\r\n", {}),
        (b"\xef\xbb\xbfnull", {}),
    ],
)
def test_nothing_new_in_any_form_is_no_records(body, headers):
    response = response_of(body)
    response.headers.update(headers)
    assert list(iter_records(response, "v")) == []


def test_an_empty_body_without_a_declared_length_is_still_truncated():
    """Without Content-Length or chunking, an empty body may be a connection that died."""
    with pytest.raises(TruncatedResponse):
        list(iter_records(response_of(b"\xef\xbb\xbf"), "v"))


def test_a_body_that_only_starts_like_null_is_malformed():
    with pytest.raises(MalformedResponse):
        list(iter_records(response_of(b"nullify"), "v"))


class _ChunkedRaw:
    """A raw stream that hands out the given chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def stream(self, chunk_size, decode_content=True):
        yield from self.chunks
