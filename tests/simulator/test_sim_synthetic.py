"""Scale mode: a large generated history served lazily, with the cursor filter and cap."""

from __future__ import annotations

import json
import time

import pytest

from flowfinity_simulator import Fault

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

N = 5_000


def ids(records):
    return [int(r["lastSubmissionId"]) for r in records]


@pytest.fixture
def big(make_sim):
    return make_sim(synthetic=N)


@pytest.fixture
def Client(make_client):
    return make_client


def test_serves_n_records_ascending_with_filter(big, Client):
    client = Client(big)
    records = client.view("leads")
    assert len(records) == N
    got = ids(records)
    assert got == sorted(got) and len(set(got)) == N
    assert records[0]["RecordID"] == "000000001" and records[-1]["RecordID"] == f"{N:09d}"
    assert set(records[0]) >= {"BusinessPhone", "Industry", "RecordID", "State", "CreatedOn"}
    pivot = got[1234]
    assert ids(client.view("leads", PreviousLastSubmissionId=str(pivot))) == got[1235:]
    assert client.view("leads", PreviousLastSubmissionId="999") == records
    assert client.view("leads", PreviousLastSubmissionId=str(got[-1])) == []
    assert big.view_requests("leads")[0]["records_sent"] == N


def test_cap_pages_through_the_history(big, Client):
    client = Client(big)
    big.max_records_per_response = 2_000
    pages, cursor, seen = [], None, []
    while True:
        page = client.view("leads", **({"PreviousLastSubmissionId": cursor} if cursor else {}))
        if not page:
            break
        pages.append(len(page))
        seen += ids(page)
        cursor = page[-1]["lastSubmissionId"]
    assert pages == [2_000, 2_000, 1_000]
    assert seen == sorted(seen) and len(set(seen)) == N


def test_writes_come_after_the_history(big, Client):
    client = Client(big)
    created = big.create("leads", {"FirstName": "New"})
    updated = big.update("leads", "000000010", {"Company": "Changed"})
    records = client.view("leads")
    assert len(records) == N + 1
    assert [r["RecordID"] for r in records[-2:]] == [created["RecordID"], "000000010"]
    assert records[-1]["Company"] == "Changed"
    assert ids(records) == sorted(ids(records))
    after = client.view("leads", PreviousLastSubmissionId=str(ids(records)[-3]))
    assert [r["RecordID"] for r in after] == [created["RecordID"], updated["RecordID"]]
    big.faults.add(Fault("unsorted"))
    assert ids(client.view("leads")) == sorted(ids(records), reverse=True)


def test_streams_fast_and_chunked(make_sim, Client):
    sim = make_sim(synthetic=200_000)
    client = Client(sim, timeout=30)
    started = time.monotonic()
    response, conn = client.request("GET", sim.view_url("leads"))
    assert response.getheader("Transfer-Encoding") == "chunked"
    size = 0
    while chunk := response.read(1 << 20):
        size += len(chunk)
    elapsed = time.monotonic() - started
    conn.close()
    assert sim.records_sent("leads") == 200_000
    assert 200_000 / elapsed > 50_000, f"{200_000 / elapsed:.0f} records/s"
    assert size > 200_000 * 500


def test_drop_in_synthetic_mode(big, Client):
    big.faults.add(Fault("drop_after_bytes", after_bytes=100_000, framing="chunked"))
    client = Client(big)
    response, conn = client.request("GET", big.view_url("leads"))
    body = b""
    with pytest.raises(Exception):  # noqa: B017 - IncompleteRead or a protocol error
        while chunk := response.read(4096):
            body += chunk
    conn.close()
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
