import io

import pytest
import requests
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
