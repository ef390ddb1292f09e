"""The simulated views and operations behave as Flowfinity documents them, over real HTTP."""

from __future__ import annotations

import json

import pytest

from tests.simulator.conftest import Client

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)


def ids(records):
    return [int(r["lastSubmissionId"]) for r in records]


def test_demo_apps_and_record_shape(sim, client):
    assert sim.view_keys() == ["leads", "visits"]
    assert sim.view_url("leads").endswith(
        "/Flowfinity/api/rest/v1/LeadRegistration/views/LeadsSync"
    )
    leads = client.view("leads")
    assert len(leads) == 25
    lead = leads[0]
    assert lead["RecordID"].isdigit() and len(lead["RecordID"]) == 9
    assert lead["lastSubmissionId"].isdigit() and int(lead["lastSubmissionId"]) > 18_734_000
    assert isinstance(lead["Industry"]["Selection"], str)
    assert isinstance(lead["CallbackRequested"]["Selection"], list)
    assert lead["State"] == "Open" and lead["FirstContact"].endswith("T00:00:00.000")
    assert len(client.view("visits")) == 25


def test_same_seed_same_data(sim):
    from flowfinity_simulator import Simulator

    other = Simulator(password="x", demo_records=25, seed=1)
    assert other.truth("leads") == sim.truth("leads")


def test_extra_apps_are_more_views_sharing_the_counter(make_sim):
    sim = make_sim(extra_apps=3, demo_records=4)
    client = Client(sim)
    assert sim.view_keys() == ["leads", "visits", "app03", "app04", "app05"]
    assert sim.view_url("app05").endswith("/Flowfinity/api/rest/v1/App05/views/App05Sync")
    seen = [ids(client.view(key)) for key in sim.view_keys()]
    assert all(len(view) == 4 for view in seen)
    every = sorted(i for view in seen for i in view)
    assert len(set(every)) == 20  # one site-wide counter: no id in two views
    # The apps' submissions interleave, as on a site where all are in use.
    assert max(seen[0]) > min(seen[4])


def test_auth_is_required(sim, client):
    for headers in ({}, {"Authorization": "Basic d3Jvbmc6d3Jvbmc="}):
        conn = client.connection()
        conn.request("GET", sim.view_url("leads"), headers=headers)
        response = conn.getresponse()
        assert response.status == 401
        assert response.getheader("WWW-Authenticate", "").startswith("Basic")
        response.read()
        conn.close()
    status, _ = (lambda r: (r[0].status, r[0].read()))(
        client.request("POST", sim.operation_url("leads", "Create"), {}, auth=False)
    )
    assert status == 401
    assert [r["status"] for r in sim.requests] == [401, 401, 401]


def test_unknown_path_is_404(sim, client):
    response, conn = client.request("GET", "/Flowfinity/api/rest/v1/Nope/views/Nope")
    assert response.status == 404
    conn.close()


def test_sorted_ascending_and_empty_parameter_means_everything(sim, client):
    everything = client.view("leads")
    assert ids(everything) == sorted(ids(everything))
    assert len(set(ids(everything))) == len(everything)
    assert client.view("leads", PreviousLastSubmissionId="") == everything
    assert client.view("leads", PreviousLastSubmissionId="", Unknown="x") == everything


def test_filter_is_numeric_greater_than(sim, client):
    everything = client.view("leads")
    # "999" is lexically larger than "18734..." but numerically smaller: all records come back.
    assert client.view("leads", PreviousLastSubmissionId="999") == everything
    pivot = everything[9]["lastSubmissionId"]
    assert client.view("leads", PreviousLastSubmissionId=pivot) == everything[10:]
    assert client.view("leads", PreviousLastSubmissionId="00" + pivot) == everything[10:]
    assert client.view("leads", PreviousLastSubmissionId=str(int(pivot) - 1)) == everything[9:]
    assert client.view("leads", PreviousLastSubmissionId=everything[-1]["lastSubmissionId"]) == []
    last = int(everything[-1]["lastSubmissionId"])
    assert sim.cursor_requests("leads")[-5:] == [999, int(pivot), int(pivot), int(pivot) - 1, last]
    response, conn = client.request(
        "GET", sim.view_url("leads"), params={"PreviousLastSubmissionId": "abc"}
    )
    assert response.status == 400
    conn.close()


def test_request_log(sim, client):
    client.view("leads", PreviousLastSubmissionId="18734100", Extra="1")
    (entry,) = sim.view_requests("leads")
    assert entry["method"] == "GET"
    assert entry["path"] == "/Flowfinity/api/rest/v1/LeadRegistration/views/LeadsSync"
    assert entry["query"] == {"PreviousLastSubmissionId": "18734100", "Extra": "1"}
    assert entry["cursor"] == 18734100 and entry["status"] == 200
    assert entry["records_sent"] == len(
        [r for r in sim.truth("leads").values() if int(r["lastSubmissionId"]) > 18734100]
    )
    assert client.control("GET", "/_sim/requests")[0]["cursor"] == 18734100
    client.control("DELETE", "/_sim/requests")
    assert sim.requests == []


def test_one_counter_shared_by_all_apps(sim):
    a = sim.create("leads", {"FirstName": "Ada"})
    b = sim.create("visits", {"Site": "Plant"})
    c = sim.update("leads", a["RecordID"], {"Company": "X"})
    d = sim.delete("visits", b["RecordID"])
    got = [int(r["lastSubmissionId"]) for r in (a, b, c, d)]
    assert got == list(range(got[0], got[0] + 4))
    assert got[0] > max(
        int(r["lastSubmissionId"])
        for key in sim.view_keys()
        for r in sim.truth(key).values()
        if r["RecordID"] not in (a["RecordID"], b["RecordID"])
    )
    before = sim.counter
    sim.advance_counter(100)
    assert int(sim.create("leads")["lastSubmissionId"]) == before + 101


def test_operations_create_update_delete_restore_transition(sim, client):
    status, created = client.op(
        "leads", "Create", {"RecordID": None, "ExternalTransactionId": "t1", "FirstName": "Ada"}
    )
    assert status == 200 and created["FirstName"] == "Ada" and created["State"] == "Open"
    rid = created["RecordID"]
    assert len(rid) == 9 and rid.isdigit()
    status, updated = client.op(
        "leads", "Update", {"RecordID": rid, "ExternalTransactionId": "t2", "Company": "New Co"}
    )
    assert status == 200 and updated["Company"] == "New Co" and updated["FirstName"] == "Ada"
    assert int(updated["lastSubmissionId"]) > int(created["lastSubmissionId"])
    _, deleted = client.op("leads", "Delete", {"RecordID": rid, "ExternalTransactionId": "t3"})
    assert deleted["State"] == "Deleted"
    newest = client.view("leads")[-1]
    assert newest["RecordID"] == rid and newest["State"] == "Deleted"  # still in the view
    _, restored = client.op("leads", "Restore", {"RecordID": rid, "ExternalTransactionId": "t4"})
    assert restored["State"] == "Open"
    _, moved = client.op(
        "leads", "Transition", {"RecordID": rid, "ExternalTransactionId": "t5", "State": "Won"}
    )
    assert moved["State"] == "Won"
    assert sim.truth("leads")[rid] == moved
    assert ids([created, updated, deleted, restored, moved]) == sorted(
        ids([created, updated, deleted, restored, moved])
    )


def test_repeated_external_transaction_id_is_ignored(sim, client):
    payload = {"RecordID": None, "ExternalTransactionId": "same", "FirstName": "Once"}
    status1, first = client.op("leads", "Create", payload)
    counter = sim.counter
    status2, second = client.op("leads", "Create", payload)
    assert status1 == status2 == 200 and first == second
    assert sim.counter == counter
    assert sum(r["FirstName"] == "Once" for r in sim.truth("leads").values()) == 1


@pytest.mark.parametrize(
    ("operation", "payload", "status"),
    [
        ("Create", {"RecordID": "000000001", "ExternalTransactionId": "a"}, 400),
        ("Update", {"RecordID": None, "ExternalTransactionId": "b"}, 400),
        ("Update", {"RecordID": "999999999", "ExternalTransactionId": "c"}, 404),
        ("Create", {"RecordID": None}, 400),
        ("Explode", {"RecordID": None, "ExternalTransactionId": "d"}, 404),
    ],
)
def test_bad_operations(sim, client, operation, payload, status):
    assert client.op("leads", operation, payload)[0] == status


def test_control_api_writes_and_truth(sim, client):
    info = client.control("GET", "/_sim/info")
    assert info["views"]["leads"] == sim.view_url("leads")
    created = client.control("POST", "/_sim/views/leads/records", {"FirstName": "Grace"})
    rid = created["RecordID"]
    client.control("POST", f"/_sim/views/leads/records/{rid}", {"Company": "Navy"})
    client.control("POST", f"/_sim/views/leads/records/{rid}/delete")
    assert client.control("GET", "/_sim/truth/leads")[rid]["State"] == "Deleted"
    client.control("POST", f"/_sim/views/leads/records/{rid}/restore")
    client.control("POST", f"/_sim/views/leads/records/{rid}/state", {"State": "Won"})
    truth = client.control("GET", "/_sim/truth/leads")
    assert truth[rid]["State"] == "Won" and truth[rid]["Company"] == "Navy"
    assert client.control("POST", "/_sim/advance", {"by": 10})["counter"] == sim.counter
    client.control("POST", "/_sim/reset")
    assert rid not in sim.truth("leads") and len(sim.truth("leads")) == 25
    response, conn = client.request("GET", "/_sim/truth/nope", auth=False)
    assert response.status == 404 and "error" in json.loads(response.read())
    conn.close()


def test_keep_alive_connection_serves_several_requests(sim, client):
    conn = client.connection()
    for _ in range(3):
        conn.request("GET", sim.view_url("visits"), headers=client.auth)
        response = conn.getresponse()
        assert response.status == 200 and len(json.loads(response.read())) == 25
    conn.close()
