"""Deletes as Flowfinity models them: a transition to "Deleted", loaded as a soft delete.

Proves end to end (meltano run into PostgreSQL): the row stays with `_sdc_deleted_at` set,
a restore clears it, and the table keeps matching the simulator's truth.
"""

from __future__ import annotations

import pytest

from tests.e2e.helpers import assert_table_matches_truth, table_rows
from tests.harness.meltano import run_job

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

LEADS = "leads"


def live_count(postgres, dbname):
    sql = f"select count(*) from flowfinity.{LEADS} where _sdc_deleted_at is null"
    return int(postgres.query(sql, dbname)[0][0])


@pytest.mark.slow
def test_delete_is_flagged_and_restore_unflags(simulator, meltano_env, postgres, pg_database):
    run_job(meltano_env)
    victim = sorted(simulator.truth(LEADS))[0]
    simulator.advance_counter(5000)
    simulator.delete(LEADS, victim)
    run_job(meltano_env)

    row = table_rows(postgres, pg_database, LEADS)[victim]
    assert row["State"] == "Deleted"
    assert row["_sdc_deleted_at"] is not None
    assert live_count(postgres, pg_database) == len(simulator.truth(LEADS)) - 1
    assert_table_matches_truth(postgres, pg_database, simulator, LEADS)

    simulator.advance_counter(5000)
    simulator.restore(LEADS, victim)
    run_job(meltano_env)

    row = table_rows(postgres, pg_database, LEADS)[victim]
    assert row["State"] == "Open"
    assert row["_sdc_deleted_at"] is None
    assert live_count(postgres, pg_database) == len(simulator.truth(LEADS))
    assert_table_matches_truth(postgres, pg_database, simulator, LEADS)


@pytest.mark.slow
def test_record_created_and_deleted_between_runs(simulator, meltano_env, postgres, pg_database):
    run_job(meltano_env)
    created = simulator.create(LEADS, {"Company": "Short Lived"})
    simulator.delete(LEADS, created["RecordID"])
    run_job(meltano_env)
    row = table_rows(postgres, pg_database, LEADS)[created["RecordID"]]
    assert row["Company"] == "Short Lived"
    assert row["_sdc_deleted_at"] is not None


def test_deleted_at_is_utc_whatever_the_database_time_zone(
    simulator, meltano_env, postgres, pg_database
):
    """`_sdc_deleted_at` lands as UTC wall time even when the server's session zone is not UTC."""
    postgres.execute(f"alter database {pg_database} set timezone = 'America/New_York'")
    victim = sorted(simulator.truth(LEADS))[0]
    simulator.delete(LEADS, victim)
    run_job(meltano_env)
    sql = (
        "select extract(epoch from (now() at time zone 'UTC') - _sdc_deleted_at) "
        f"""from flowfinity.{LEADS} where "RecordID" = '{victim}'"""
    )
    age_seconds = float(postgres.query(sql, pg_database)[0][0])
    assert 0 <= age_seconds < 600, f"stored {age_seconds:.0f}s away from UTC now"
