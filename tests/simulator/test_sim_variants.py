"""Each variant switch serves what it promises, over raw HTTP (variants.py)."""

from __future__ import annotations

import contextlib
import json

import pytest

from flowfinity_simulator.variants import Variants

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)


def raw(client, key, method="GET", query=""):
    """Status, headers and body bytes of one view request (query string as given)."""
    conn = client.connection()
    with contextlib.closing(conn):
        conn.request(method, client.sim.view_url(key) + query, headers=client.auth)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()


def newest(sim, key="leads"):
    return max(int(r["lastSubmissionId"]) for r in sim.truth(key).values())


def test_key_casing_renames_only_the_keys(make_sim, make_client):
    sim = make_sim(variants=Variants(cursor_key="lastSubmissionID", state_key="state"))
    status, _, body = raw(make_client(sim), "leads")
    records = json.loads(body)
    assert status == 200 and len(records) == 25
    assert all("lastSubmissionID" in r and "state" in r for r in records)
    assert not any("lastSubmissionId" in r or "State" in r for r in records)
    assert list(records[0])[-1] == "lastSubmissionID", "key order kept"
    assert [r["RecordID"] for r in records] == sorted(sim.truth("leads"))


def test_records_per_submission_share_ids_and_the_filter_keeps_groups_whole(make_sim, make_client):
    sim = make_sim(variants=Variants(records_per_submission=3), demo_records=7)
    client = make_client(sim)
    ids = [int(r["lastSubmissionId"]) for r in json.loads(raw(client, "leads")[2])]
    assert len(ids) == 7 and sorted(ids) == ids
    assert [ids.count(i) for i in dict.fromkeys(ids)] == [3, 3, 1]
    after = json.loads(raw(client, "leads", query=f"?PreviousLastSubmissionId={ids[0] - 1}")[2])
    assert len(after) == 7, "asking from id - 1 returns the whole first group again"
    created = sim.create_together("leads", [{"FirstName": "A"}, {"FirstName": "B"}])
    assert created[0]["lastSubmissionId"] == created[1]["lastSubmissionId"]


@pytest.mark.parametrize(
    ("form", "status", "body"),
    [("array", 200, b"[]"), ("no_content", 204, b""), ("empty", 200, b""), ("null", 200, b"null")],
)
def test_the_empty_answer_forms(make_sim, make_client, form, status, body):
    sim = make_sim(variants=Variants(empty_answer=form))
    got_status, headers, got_body = raw(
        make_client(sim), "leads", query=f"?PreviousLastSubmissionId={newest(sim)}"
    )
    assert (got_status, got_body) == (status, body)
    if form == "empty":
        assert headers["Content-Length"] == "0"
    assert len(json.loads(raw(make_client(sim), "leads")[2])) == 25, "records as usual"


def test_bom_before_every_json_body(make_sim, make_client):
    sim = make_sim(variants=Variants(bom=True, empty_answer="null"))
    client = make_client(sim)
    _, headers, body = raw(client, "leads")
    assert body.startswith(b"\xef\xbb\xbf[") and int(headers["Content-Length"]) == len(body)
    assert len(json.loads(body.decode("utf-8-sig"))) == 25
    assert raw(client, "leads", query=f"?PreviousLastSubmissionId={newest(sim)}")[2] == (
        b"\xef\xbb\xbfnull"
    )


def test_strict_parameters_join_a_repeated_one_and_refuse_it(make_sim, make_client):
    sim = make_sim(variants=Variants(strict_params=True))
    client = make_client(sim)
    status, _, body = raw(
        client, "leads", query="?PreviousLastSubmissionId=0&PreviousLastSubmissionId=5"
    )
    assert status == 400 and b"numeric" in body
    assert sim.requests[-1]["repeated"] == ["PreviousLastSubmissionId"]
    assert raw(client, "leads", query="?PreviousLastSubmissionId=0")[0] == 200
    lenient = make_sim()
    assert (
        raw(
            make_client(lenient),
            "leads",
            query="?PreviousLastSubmissionId=0&PreviousLastSubmissionId=5",
        )[0]
        == 200
    )


@pytest.mark.parametrize("scheme", ["NTLM", "Negotiate", "Bearer"])
def test_a_non_basic_site_challenges_with_its_scheme(make_sim, make_client, scheme):
    sim = make_sim(variants=Variants(auth_scheme=scheme))
    status, headers, _ = raw(make_client(sim), "leads")
    assert status == 401 and headers["WWW-Authenticate"] == scheme


def test_a_site_that_reads_with_post_refuses_get_with_405(make_sim, make_client):
    sim = make_sim(variants=Variants(method="POST"))
    client = make_client(sim)
    status, headers, _ = raw(client, "leads")
    assert status == 405 and headers["Allow"] == "POST"
    status, _, body = raw(client, "leads", method="POST")
    assert status == 200 and len(json.loads(body)) == 25


def test_variants_over_the_control_api(sim, client):
    assert client.control("GET", "/_sim/variants")["cursor_key"] == "lastSubmissionId"
    switched = client.control("POST", "/_sim/variants", {"empty_answer": "no_content"})
    assert switched["empty_answer"] == "no_content"
    assert raw(client, "leads", query=f"?PreviousLastSubmissionId={newest(sim)}")[0] == 204
    response, conn = client.request(
        "POST", "/_sim/variants", {"empty_answer": "nothing"}, auth=False
    )
    with contextlib.closing(conn):
        assert response.status == 400
    response, conn = client.request("POST", "/_sim/variants", {"casing": "x"}, auth=False)
    with contextlib.closing(conn):
        assert response.status == 400 and b"unknown variants" in response.read()
    created = client.control("POST", "/_sim/views/leads/transaction", {"records": [{}, {}]})
    assert len({r["lastSubmissionId"] for r in created}) == 1
