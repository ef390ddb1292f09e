"""Each scripted fault does what it says, seen from a raw HTTP client."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from flowfinity_simulator import Fault

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)


def ids(records):
    return [int(r["lastSubmissionId"]) for r in records]


def raw_view(client, key, params=None, timeout=None):
    response, conn = client.request("GET", client.sim.view_url(key), params=params, timeout=timeout)
    return response, conn


def test_status_with_retry_after_applies_times_then_clears(sim, client):
    sim.faults.add(
        Fault(
            "status", view="leads", status=503, headers={"Retry-After": "2"}, body="busy", times=2
        )
    )
    for _ in range(2):
        response, conn = raw_view(client, "leads")
        assert response.status == 503 and response.getheader("Retry-After") == "2"
        assert response.read() == b"busy"
        conn.close()
    assert len(client.view("leads")) == 25
    assert [r["status"] for r in sim.view_requests("leads")] == [503, 503, 200]


def test_html_login_page_with_200(sim, client):
    page = "<html><body><form>Sign in</form></body></html>"
    sim.faults.add(Fault("status", status=200, headers={"Content-Type": "text/html"}, body=page))
    response, conn = raw_view(client, "visits")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html"
    assert response.read().decode() == page
    conn.close()


def test_view_match_and_always_until_cleared(sim, client):
    sim.faults.add(Fault("status", view="visits", status=500, times=None))
    assert len(client.view("leads")) == 25  # other view untouched
    for _ in range(3):
        response, conn = raw_view(client, "visits")
        assert response.status == 500
        conn.close()
    sim.faults.clear()
    assert len(client.view("visits")) == 25


def test_reset_before_any_response(sim, client):
    sim.faults.add(Fault("reset"))
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        raw_view(client, "leads")
    assert sim.view_requests("leads")[-1]["status"] == 0
    assert len(client.view("leads")) == 25


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_drop_after_bytes_is_a_short_read(sim, client, framing):
    sim.faults.add(Fault("drop_after_bytes", after_bytes=1000, framing=framing))
    response, conn = raw_view(client, "leads")
    assert response.status == 200
    if framing == "length":
        assert int(response.getheader("Content-Length")) > 1000
    else:
        assert response.getheader("Transfer-Encoding") == "chunked"
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert len(cut.value.partial) == 1000
    conn.close()


def test_drop_after_bytes_without_length_looks_like_a_normal_end(sim, client):
    sim.faults.add(Fault("drop_after_bytes", after_bytes=1000, framing="close"))
    response, conn = raw_view(client, "leads")
    assert response.getheader("Content-Length") is None
    body = response.read()
    assert len(body) == 1000
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    conn.close()


def test_slow_headers_trip_a_client_timeout(sim, client):
    sim.faults.add(Fault("slow", delay=0.6))
    with pytest.raises(TimeoutError):
        raw_view(client, "leads", timeout=0.2)


def test_slow_drip_delays_the_body(sim, client):
    sim.faults.add(Fault("slow", chunk_delay=0.05, chunk_bytes=4096))
    started = time.monotonic()
    records = json.loads(raw_view(client, "leads")[0].read())
    elapsed = time.monotonic() - started
    assert len(records) == 25
    assert elapsed >= 0.05 * 2  # the ~15 kB body goes out in 4 kB chunks, 50 ms apart
    sim.faults.add(Fault("slow", chunk_delay=0.5, chunk_bytes=1024))
    response, conn = raw_view(client, "leads", timeout=0.2)  # headers come at once
    assert response.status == 200
    with pytest.raises(TimeoutError):
        response.read()
    conn.close()


@pytest.mark.parametrize(
    "body",
    [
        '[{"RecordID": "1", "lastSubmissionId": "1"',  # malformed / truncated
        '{"error": "not an array"}',
        '[{"RecordID": "000000001"}]',  # no cursor
        '[{"RecordID": "000000001", "lastSubmissionId": "abc"}]',
    ],
)
def test_body_replaced(sim, client, body):
    sim.faults.add(Fault("body", body=body))
    response, conn = raw_view(client, "leads")
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/json"
    assert response.read().decode() == body
    conn.close()


def test_body_as_bytes(sim, client):
    sim.faults.add(Fault.from_json({"kind": "body", "body_base64": "/w==", "times": 1}))
    assert raw_view(client, "leads")[0].read() == b"\xff"


def test_unsorted_orders(sim, client):
    everything = ids(client.view("leads"))
    sim.faults.add(Fault("unsorted"))
    assert ids(client.view("leads")) == everything[::-1]
    sim.faults.add(Fault("unsorted", order="swap_last"))
    assert ids(client.view("leads")) == everything[:-2] + everything[-1:-3:-1]
    sim.faults.add(Fault("unsorted", order="swap_first"))
    assert ids(client.view("leads")) == everything[1::-1] + everything[2:]


def test_ignore_cursor(sim, client):
    everything = client.view("leads")
    sim.faults.add(Fault("ignore_cursor"))
    newest = everything[-1]["lastSubmissionId"]
    assert client.view("leads", PreviousLastSubmissionId=newest) == everything


def test_cap_per_fault_and_site_wide(sim, client):
    everything = client.view("leads")
    sim.faults.add(Fault("cap", cap=10, times=None))
    pages, cursor = [], None
    while True:
        page = client.view("leads", **({"PreviousLastSubmissionId": cursor} if cursor else {}))
        if not page:
            break
        pages.append(len(page))
        cursor = page[-1]["lastSubmissionId"]
    assert pages == [10, 10, 5]
    sim.faults.clear()
    sim.max_records_per_response = 7
    assert client.view("leads") == everything[:7]
    assert sim.view_requests("leads")[-1]["records_sent"] == 7


def test_faults_over_the_control_api(sim, client):
    pending = client.control(
        "POST",
        "/_sim/faults",
        [
            {"kind": "status", "view": "leads", "status": 429, "headers": {"Retry-After": "1"}},
            {"kind": "cap", "cap": 3, "times": "always"},
        ],
    )
    assert [f["kind"] for f in pending] == ["status", "cap"]
    assert client.control("GET", "/_sim/faults")[1]["times"] is None
    response, conn = raw_view(client, "leads")
    assert response.status == 429
    conn.close()
    assert len(client.view("leads")) == 3
    client.control("DELETE", "/_sim/faults")
    assert len(client.view("leads")) == 25
    response, conn = client.request("POST", "/_sim/faults", {"kind": "nope"}, auth=False)
    assert response.status == 400
    conn.close()


def test_late_visible_race_with_a_manual_hold(sim, client):
    """A submission takes its id, a later one is read first, then a strict > cursor skips it."""
    with sim.hold("leads", {"FirstName": "Slow"}) as held:
        fast = sim.create("leads", {"FirstName": "Fast"})
        assert held.submission_id < int(fast["lastSubmissionId"])
        read = client.view("leads")
        assert read[-1]["RecordID"] == fast["RecordID"]
        assert held.record_id not in {r["RecordID"] for r in read}
        cursor = read[-1]["lastSubmissionId"]
    # released on exit, with its old, smaller id
    assert sim.truth("leads")[held.record_id]["FirstName"] == "Slow"
    assert client.view("leads", PreviousLastSubmissionId=cursor) == []
    overlap = client.view("leads", PreviousLastSubmissionId=str(held.submission_id - 1))
    assert held.record_id in {r["RecordID"] for r in overlap}


def test_late_visible_every_nth_write_for_m_reads(sim, client):
    sim.late_visible(view="leads", every=2, reads=2)
    first = sim.create("leads", {"FirstName": "One"})
    second = sim.create("leads", {"FirstName": "Two"})  # held for the next 2 reads
    third = sim.create("leads", {"FirstName": "Three"})
    for _ in range(2):
        seen = {r["RecordID"] for r in client.view("leads")}
        assert first["RecordID"] in seen and third["RecordID"] in seen
        assert second["RecordID"] not in seen
    seen = {r["RecordID"] for r in client.view("leads")}
    assert second["RecordID"] in seen


def test_hold_over_the_control_api(sim, client):
    held = client.control("POST", "/_sim/views/leads/holds", {"FirstName": "Held"})
    rid = held["record"]["RecordID"]
    assert rid not in sim.truth("leads")
    assert [h["hold"] for h in client.control("GET", "/_sim/holds")] == [held["hold"]]
    client.control("POST", f"/_sim/holds/{held['hold']}/release")
    assert sim.truth("leads")[rid]["FirstName"] == "Held"
    assert client.control("GET", "/_sim/holds") == []


def test_stop_ends_keep_alive_connections(sim, client):
    conn = client.connection()
    conn.request("GET", sim.view_url("leads"), headers=client.auth)
    conn.getresponse().read()
    sim.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, socket.error)):
        conn.request("GET", sim.view_url("leads"), headers=client.auth)
        conn.getresponse().read()
