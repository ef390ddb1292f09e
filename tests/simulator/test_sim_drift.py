"""The changes the change feed cannot show, over real HTTP: purges, records leaving and
re-entering the view's filter, and submissions visible only after later ids were handed out.

Each is what a reconciliation (a whole-view re-read) exists for: a read from the cursor never
sees them, so these tests check both that a full read does and that a cursor read does not.
"""

from __future__ import annotations

import contextlib
import json

import pytest

from flowfinity_simulator.variants import Variants

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)


def record_ids(records):
    return {r["RecordID"] for r in records}


def newest_id(records):
    return records[-1]["lastSubmissionId"]


def status_of(client, method, path, body=None):
    response, conn = client.request(method, path, body, auth=False)
    with contextlib.closing(conn):
        return response.status, json.loads(response.read())


def test_purge_removes_a_record_for_good_and_takes_no_id(sim, client):
    before = client.view("leads")
    victim = before[3]["RecordID"]
    counter = sim.counter
    answer = client.control("POST", f"/_sim/views/leads/records/{victim}/purge")
    assert answer == sim.store.app("leads").purged[victim]
    assert answer["RecordID"] == victim and answer["State"] == "Open", "as it was last"
    assert sim.counter == counter, "a purge submits nothing, so it takes no submission id"
    after = client.view("leads")
    assert record_ids(after) == record_ids(before) - {victim}
    assert client.view("leads", PreviousLastSubmissionId=newest_id(before)) == []
    truth = client.control("GET", "/_sim/truth/leads")
    assert victim not in truth and len(truth) == 24
    assert client.control("GET", "/_sim/gone/leads") == [victim]
    assert client.control("GET", "/_sim/gone/visits") == []
    path = f"/_sim/views/leads/records/{victim}"
    for method, suffix in [("POST", ""), ("POST", "/delete"), ("POST", "/purge")]:
        status, error = status_of(client, method, path + suffix, {"Company": "X"})
        assert status == 404 and "purged" in error["error"]
    assert sim.counter == counter


def test_purge_of_a_synthetic_record(make_sim, make_client):
    sim = make_sim(synthetic=30)
    client = make_client(sim)
    victim = "000000007"
    assert victim in record_ids(client.view("leads"))
    sim.purge("leads", victim)
    served = client.view("leads")
    assert len(served) == 29 and victim not in record_ids(served)
    assert victim not in sim.truth("leads") and len(sim.truth("leads")) == 29
    assert sim.gone("leads") == [victim]


def test_delete_operation_purges_only_where_the_site_says_so(sim, client):
    rid = client.view("leads")[0]["RecordID"]
    _, flagged = client.op("leads", "Delete", {"RecordID": rid, "ExternalTransactionId": "d1"})
    assert flagged["State"] == "Deleted" and sim.gone("leads") == []
    assert client.control("GET", "/_sim/variants")["delete_operation"] == "state"
    client.control("POST", "/_sim/variants", {"delete_operation": "purge"})
    counter = sim.counter
    status, removed = client.op("leads", "Delete", {"RecordID": rid, "ExternalTransactionId": "d2"})
    assert status == 200 and removed["RecordID"] == rid
    assert rid not in record_ids(client.view("leads")) and sim.gone("leads") == [rid]
    assert sim.counter == counter
    again = client.op("leads", "Delete", {"RecordID": rid, "ExternalTransactionId": "d2"})
    assert again == (200, removed), "a repeated transaction is still answered as the first"
    status, _ = client.op("leads", "Restore", {"RecordID": rid, "ExternalTransactionId": "d3"})
    assert status == 404, "nothing is left to restore"
    other = client.view("visits")[0]["RecordID"]
    client.control("POST", f"/_sim/views/visits/records/{other}/delete")
    assert sim.gone("visits") == [other], "the control API's delete follows the site too"
    status, error = status_of(client, "POST", "/_sim/variants", {"delete_operation": "erase"})
    assert status == 400 and "delete_operation" in error["error"]


def test_a_held_edit_of_a_record_purged_meanwhile_stays_gone(sim, client):
    rid = client.view("leads")[0]["RecordID"]
    held = sim.hold("leads", {"Company": "Too late"}, record_id=rid)
    sim.purge("leads", rid)
    held.release()
    assert rid not in record_ids(client.view("leads")) and rid not in sim.truth("leads")
    assert sim.gone("leads") == [rid]


def test_leave_and_enter_the_views_filter(sim, client):
    before = client.view("leads")
    rid = before[5]["RecordID"]
    counter = sim.counter
    left = client.control("POST", f"/_sim/views/leads/records/{rid}/leave", {"Region": "East"})
    assert int(left["lastSubmissionId"]) == counter + 1, "leaving is an update: it takes an id"
    assert left["Region"] == "East"
    assert rid not in record_ids(client.view("leads"))
    assert client.view("leads", PreviousLastSubmissionId=newest_id(before)) == []
    assert rid not in client.control("GET", "/_sim/truth/leads")
    assert client.control("GET", "/_sim/gone/leads") == [rid]
    edited = sim.update("leads", rid, {"Company": "Edited outside"})
    assert int(edited["lastSubmissionId"]) == counter + 2
    assert rid not in record_ids(client.view("leads")), "an update does not bring it back"
    status, error = status_of(client, "POST", f"/_sim/views/leads/records/{rid}/leave")
    assert status == 400 and "already outside" in error["error"]

    back = client.control("POST", f"/_sim/views/leads/records/{rid}/enter", {"Region": "West"})
    assert int(back["lastSubmissionId"]) == counter + 3
    assert back["Company"] == "Edited outside" and back["Region"] == "West"
    newer = client.view("leads", PreviousLastSubmissionId=newest_id(before))
    assert newer == [back], "it re-enters with a new id, above everything read before"
    assert client.control("GET", "/_sim/truth/leads")[rid] == back
    assert client.control("GET", "/_sim/gone/leads") == []
    status, error = status_of(client, "POST", f"/_sim/views/leads/records/{rid}/enter")
    assert status == 400 and "not outside" in error["error"]
    for action in ("leave", "enter"):
        status, _ = status_of(client, "POST", f"/_sim/views/leads/records/999999999/{action}")
        assert status == 404


def test_a_synthetic_record_leaves_and_re_enters(make_sim, make_client):
    sim = make_sim(synthetic=20)
    client = make_client(sim)
    rid = "000000004"
    sim.leave("leads", rid)
    assert rid not in record_ids(client.view("leads")) and rid not in sim.truth("leads")
    assert sim.gone("leads") == [rid]
    sim.purge("leads", "000000009")
    assert sim.gone("leads") == [rid, "000000009"]
    back = sim.enter("leads", rid)
    served = client.view("leads")
    assert served[-1] == back and len(served) == 19
    assert sim.gone("leads") == ["000000009"]
    sim.leave("leads", "000000011")
    sim.purge("leads", "000000011")  # purged while outside: gone once, and for good
    assert sim.gone("leads") == ["000000009", "000000011"]
    with pytest.raises(KeyError, match="purged"):
        sim.enter("leads", "000000011")
    assert len(client.view("leads")) == 18


def test_a_held_edit_keeps_the_records_place_outside_or_in(sim, client):
    """Released late, an older version never overrides a leave, nor brings the record back."""
    rid = client.view("leads")[0]["RecordID"]
    before_leave = sim.hold("leads", {"Company": "Before leave"}, record_id=rid)
    sim.leave("leads", rid)
    while_outside = sim.hold("leads", {"Company": "While outside"}, record_id=rid)
    before_leave.release()
    while_outside.release()
    assert rid not in record_ids(client.view("leads")) and sim.gone("leads") == [rid]
    back = sim.enter("leads", rid)
    assert back["Company"] == "While outside"
    assert sim.truth("leads")[rid] == back


def test_a_hold_released_by_ids_appears_below_ids_already_read(sim, client):
    held = client.control("POST", "/_sim/views/leads/holds", {"FirstName": "Late", "_ids": 3})
    own = int(held["record"]["lastSubmissionId"])
    assert held["ids_left"] == 3 and held["reads_left"] is None
    rid = held["record"]["RecordID"]
    fast = client.control("POST", "/_sim/views/leads/records", {"FirstName": "Fast"})  # one id
    read = client.view("leads")
    assert newest_id(read) == fast["lastSubmissionId"] and rid not in record_ids(read)
    assert client.control("GET", "/_sim/holds")[0]["ids_left"] == 2
    client.control("POST", "/_sim/views/visits/records", {"Site": "Elsewhere"})  # another view
    assert rid not in record_ids(client.view("leads")), "reads alone never release it"
    assert rid not in sim.truth("leads")
    assert client.control("GET", "/_sim/holds")[0]["ids_left"] == 1
    client.control("POST", "/_sim/advance", {"by": 1})  # the counter is now own + 3
    assert sim.counter == own + 3
    assert client.control("GET", "/_sim/holds") == []
    assert sim.truth("leads")[rid]["lastSubmissionId"] == str(own), "it keeps its own id"
    assert rid in record_ids(client.view("leads"))
    after_cursor = client.view("leads", PreviousLastSubmissionId=newest_id(read))
    assert rid not in record_ids(after_cursor), "below the cursor already read: never seen"


def test_a_held_update_by_ids_and_the_first_condition_wins(sim, client):
    rid = client.view("leads")[2]["RecordID"]
    held = sim.hold("leads", {"Company": "Slow edit"}, record_id=rid, ids=5, reads=2)
    sim.create("visits")  # one id of five
    client.view("leads")
    assert sim.truth("leads")[rid]["Company"] != "Slow edit"
    client.view("leads")  # the second read releases it before the ids do
    assert sim.truth("leads")[rid]["Company"] == "Slow edit" and held.released
    by_ids = sim.hold("leads", {"Company": "By ids"}, record_id=rid, ids=1, reads=10)
    sim.create("leads", {"FirstName": "Next"})  # one id: the counter passed the hold's
    assert by_ids.released and sim.truth("leads")[rid]["Company"] == "By ids"
    for bad in (0, -1):
        status, error = status_of(client, "POST", "/_sim/views/leads/holds", {"_ids": bad})
        assert status == 400 and "ids" in error["error"]


@pytest.mark.parametrize("delete_operation", ["state", "purge"])
def test_the_chaos_writer_drifts_only_when_asked(make_sim, delete_operation):
    from tests.e2e.source_writer import DRIFT_OPS, PHASE_S, Writer

    steady = make_sim(synthetic=3000)
    writer = Writer(steady, seed=3, synthetic=3000)
    for _ in range(100):
        writer.step()
    assert not set(writer.ops) & set(DRIFT_OPS) and steady.gone("leads") == []

    sim = make_sim(synthetic=3000, variants=Variants(delete_operation=delete_operation))
    writer = Writer(sim, seed=3, synthetic=3000, drift=True)
    writer.started -= PHASE_S  # the phase of slow submissions: drift must step around them
    for _ in range(300):
        writer.step()
    assert writer.ops["slow"] and writer.late_versions()
    for held, _ in writer.pending:
        writer.commit_late(held)
    assert {"purge", "leave", "enter"} <= set(writer.ops)
    assert ("delete" in writer.ops) == (delete_operation == "state")
    assert writer.purged and writer.outside, "some records are gone at the end"
    assert sim.gone("leads") == sorted(writer.purged | writer.outside)
    assert set(sim.truth("leads")) == set(writer.ids) - writer.outside
    truth = sim.truth("leads")
    for record_id, submission_id in writer.late_versions():  # none was dropped on release
        if record_id in truth:
            assert int(truth[record_id]["lastSubmissionId"]) >= submission_id
