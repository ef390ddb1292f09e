"""The main job end to end: `meltano run tap-flowfinity target-postgres`, simulator to PostgreSQL.

Proves: a first sync loads every record once; the next run asks only from the stored bookmark
(less the lookback overlap) and brings inserts, updates and state changes; the table equals
the simulator's truth after every run; two views land in two tables.
"""

from __future__ import annotations

from tests.e2e.helpers import assert_table_matches_truth, cursor_requests, table_rows

from tests.harness.meltano import get_bookmarks, run_job

LEADS = "leads"


def test_first_sync_loads_every_record_once(simulator, meltano_env, postgres, pg_database):
    run_job(meltano_env)
    for key in simulator.view_keys():
        assert_table_matches_truth(postgres, pg_database, simulator, key)
    bookmarks = get_bookmarks(meltano_env)
    for key in simulator.view_keys():
        truth = simulator.truth_for_view(key)
        assert bookmarks[key]["replication_key"] == "lastSubmissionId"
        assert bookmarks[key]["replication_key_value"] == max(
            int(r["lastSubmissionId"]) for r in truth.values()
        )


def test_second_sync_reads_from_the_bookmark(simulator, meltano_env, postgres, pg_database):
    run_job(meltano_env)
    bookmark = get_bookmarks(meltano_env)[LEADS]["replication_key_value"]
    simulator.advance_counter(5000)  # other apps' submissions between two scheduled runs
    created = simulator.create(LEADS, {"FirstName": "Ada", "Company": "New Co"})
    some_id = sorted(simulator.truth_for_view(LEADS))[3]
    simulator.update(LEADS, some_id, {"Company": "Renamed Inc"})
    simulator.clear_request_log()

    run_job(meltano_env)

    asked = cursor_requests(simulator, LEADS)
    assert asked[0] == bookmark - 1000, "resumed from the bookmark less the default lookback"
    assert all(value is not None for value in asked), "never from scratch"
    rows = table_rows(postgres, pg_database, LEADS)
    assert rows[created["RecordID"]]["FirstName"] == "Ada"
    assert rows[some_id]["Company"] == "Renamed Inc"
    assert_table_matches_truth(postgres, pg_database, simulator, LEADS)
    assert simulator.records_sent(LEADS) == 2, "only the two changed records were read"


def test_soft_delete_and_restore(simulator, meltano_env, postgres, pg_database):
    run_job(meltano_env)
    victim = sorted(simulator.truth_for_view(LEADS))[0]
    simulator.advance_counter(5000)
    simulator.delete(LEADS, victim)
    run_job(meltano_env)
    row = table_rows(postgres, pg_database, LEADS)[victim]
    assert row["State"] == "Deleted"
    assert row["_sdc_deleted_at"] is not None
    live = postgres.query(
        f"select count(*) from flowfinity.{LEADS} where _sdc_deleted_at is null", pg_database
    )[0][0]
    assert int(live) == len(simulator.truth_for_view(LEADS)) - 1

    simulator.advance_counter(5000)
    simulator.restore(LEADS, victim)
    run_job(meltano_env)
    row = table_rows(postgres, pg_database, LEADS)[victim]
    assert row["State"] == "Open"
    assert row["_sdc_deleted_at"] is None
    assert_table_matches_truth(postgres, pg_database, simulator, LEADS)
