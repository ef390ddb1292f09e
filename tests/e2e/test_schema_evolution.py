"""Schema fidelity through `meltano run tap-flowfinity target-postgres`, read back from PostgreSQL.

- A field that appears after discovery, mid-sync and between syncs (across the bookmark
  resume of the next run), becomes a column holding its values; a field that disappears stays.
- Declared types become typed columns; a value that does not fit lands in `<field>__raw`.
- Nested JSON, unicode, empty strings and nulls arrive distinct.

Discovery samples only the first few records (`discovery_sample_size`), so fields on records
created later are unknown to the catalog Meltano passes to the tap: exactly the situation of
a designer adding a field to a live app.
"""

from __future__ import annotations

import pytest

from tests.e2e.helpers import SCHEMA, assert_table_matches_truth, table_rows
from tests.harness.meltano import MeltanoError, get_bookmarks, run_job

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

LEADS = "leads"


def columns(postgres, dbname, table=LEADS):
    rows = postgres.query(
        "select column_name, udt_name from information_schema.columns "
        f"where table_schema = '{SCHEMA}' and table_name = '{table}'",
        dbname,
    )
    return dict(rows)


def max_cursor(simulator, view=LEADS):
    return max(int(r["lastSubmissionId"]) for r in simulator.truth(view).values())


@pytest.fixture
def small_sample(meltano_env):
    meltano_env.extra["TAP_FLOWFINITY_DISCOVERY_SAMPLE_SIZE"] = "5"
    return meltano_env


@pytest.mark.slow
def test_new_fields_mid_sync_and_between_syncs_land_in_postgres(
    simulator, small_sample, postgres, pg_database
):
    env = small_sample
    # Mid-sync: after the 5 sampled records, a record carries a field discovery never saw.
    mid = simulator.create(LEADS, {"Priority": {"Selection": "High"}, "Budget": "1200"})
    after_mid = simulator.create(LEADS, {"Priority": {"Selection": "Low"}})

    run_job(env)

    cols = columns(postgres, pg_database)
    assert cols["Priority"] == "text"
    rows = table_rows(postgres, pg_database, LEADS)
    assert rows[mid["RecordID"]]["Priority"] == "High"
    assert rows[mid["RecordID"]]["Budget"] == "1200"
    assert rows[after_mid["RecordID"]]["Priority"] == "Low"
    assert rows[after_mid["RecordID"]]["Budget"] is None
    old_id = sorted(rows)[0]
    assert rows[old_id]["Priority"] is None
    first_bookmark = get_bookmarks(env=env)[LEADS]["replication_key_value"]
    assert first_bookmark == max_cursor(simulator)

    # Between syncs: a designer adds Region and a check-box list; new and updated records
    # carry them. The next run resumes from the bookmark and still finds neither field in
    # its (5-record) discovery sample.
    simulator.advance_counter(5000)
    created = simulator.create(
        LEADS, {"Region": "Nord-Ost", "Equipment": {"Selection": ["Van", "Ladder"]}}
    )
    simulator.update(LEADS, old_id, {"Region": "Süd", "Equipment": {"Selection": []}})
    # and a field that disappears: records written now no longer carry Priority
    no_priority = simulator.create(LEADS, {"Region": None})
    simulator.store.app(LEADS).records[no_priority["RecordID"]].pop("Priority", None)
    simulator.clear_request_log()

    run_job(env)

    sync_cursors = [c for c in simulator.cursor_requests(LEADS) if c is not None]
    assert sync_cursors and sync_cursors[0] <= first_bookmark, "resumed from the bookmark"
    assert None not in simulator.cursor_requests(LEADS)[1:], "never from scratch"
    cols = columns(postgres, pg_database)
    assert cols["Region"] == "text"
    assert cols["Equipment"] == "_text"  # text[]
    assert cols["Priority"] == "text", "a field that disappears keeps its column"
    rows = table_rows(postgres, pg_database, LEADS)
    assert rows[created["RecordID"]]["Region"] == "Nord-Ost"
    assert rows[created["RecordID"]]["Equipment"] == ["Van", "Ladder"]
    assert rows[old_id]["Region"] == "Süd"
    assert rows[old_id]["Equipment"] == [], "nothing ticked is an empty array, not null"
    assert rows[no_priority["RecordID"]]["Region"] is None
    assert rows[mid["RecordID"]]["Priority"] == "High", "old values of the field stay"
    assert_table_matches_truth(postgres, pg_database, simulator, LEADS)
    assert get_bookmarks(env=env)[LEADS]["replication_key_value"] == max_cursor(simulator)


@pytest.mark.slow
def test_a_run_that_fails_after_a_new_field_resumes_and_loses_nothing(
    simulator, small_sample, postgres, pg_database
):
    env = small_sample
    env.extra["TAP_FLOWFINITY_ON_TYPE_ERROR"] = "fail"
    env.extra["TAP_FLOWFINITY_STATE_MESSAGE_FREQUENCY"] = "1"
    env.views[0]["field_types"] = {"EmployeeCount": "integer"}
    first = simulator.create(LEADS, {"Region": "Nord"})
    bad = simulator.create(LEADS, {"Region": "West", "EmployeeCount": "many"})

    with pytest.raises(MeltanoError) as failed:
        run_job(env)
    assert bad["RecordID"] in failed.value.stderr and "EmployeeCount" in failed.value.stderr

    simulator.update(LEADS, bad["RecordID"], {"EmployeeCount": "12"})
    simulator.clear_request_log()
    run_job(env)

    rows = table_rows(postgres, pg_database, LEADS)
    assert rows[first["RecordID"]]["Region"] == "Nord"
    assert rows[bad["RecordID"]]["Region"] == "West"
    assert rows[bad["RecordID"]]["EmployeeCount"] == 12
    truth = simulator.truth(LEADS)
    assert set(rows) == set(truth)
    for record_id, record in truth.items():
        assert rows[record_id]["lastSubmissionId"] == int(record["lastSubmissionId"])
        assert rows[record_id]["EmployeeCount"] == int(record["EmployeeCount"])
        assert rows[record_id]["Company"] == record["Company"]
    # Meltano kept the bookmark the target emitted before the failure: the run after it
    # (discovery, then the sync) resumed from there, not from scratch.
    assert simulator.cursor_requests(LEADS)[1] is not None


def test_declared_types_become_typed_columns_and_misfits_are_kept(
    simulator, meltano_env, postgres, pg_database
):
    env = meltano_env
    env.views[0]["field_types"] = {
        "EmployeeCount": "integer",
        "TotalValue": "number",
        "FirstContact": "date",
        "Callback": "boolean",
        "LastVisit": "date-time",
        "Photo": "json",
    }
    env.extra["TAP_FLOWFINITY_TIMEZONE"] = "America/Vancouver"
    good = simulator.create(
        LEADS,
        {
            "EmployeeCount": "25",
            "TotalValue": "1234567890.12",
            "FirstContact": "2020-09-06T00:00:00.000",
            "Callback": {"Selection": ["Yes"]},
            "LastVisit": "2021-01-06T04:37:30.000",
            "CreatedOn": "2020-09-06T04:37:30.000",
            "Photo": {"Url": "https://x/p.png", "Size": 1024},
            "Location": {"Lat": 49.2827, "Lng": -123.1207},
            "Items": [{"Part": "Filter", "Qty": "2"}],
            "Summary": "",
            "MobilePhone": None,
            "LastName": "Dubois-Łukasiewicz 日本 🚀",
        },
    )
    bad = simulator.create(
        LEADS,
        {
            "EmployeeCount": "about 20",
            "TotalValue": "$99",
            "FirstContact": "next week",
            "Callback": {"Selection": ["Yes", "No"]},
            "LastVisit": "06/01/2021",
        },
    )

    run_job(env)

    cols = columns(postgres, pg_database)
    assert cols["EmployeeCount"] == "int8"
    assert cols["TotalValue"] == "numeric"
    assert cols["FirstContact"] == "date"
    assert cols["Callback"] == "bool"
    assert cols["LastVisit"] == "timestamp"
    assert cols["CreatedOn"] == "timestamp"
    assert cols["Photo"] == "jsonb"
    assert cols["Location"] == "jsonb"
    assert cols["Items"] == "jsonb"
    assert cols["Industry"] == "text"
    assert cols["CallbackRequested"] == "_text"
    for name in ("EmployeeCount", "TotalValue", "FirstContact", "Callback", "LastVisit"):
        assert cols[name + "__raw"] == "text"

    rows = table_rows(postgres, pg_database, LEADS)
    row = rows[good["RecordID"]]
    assert row["EmployeeCount"] == 25
    assert row["TotalValue"] == 1234567890.12
    record_id = good["RecordID"]
    exact = f"""select "TotalValue"::text from {SCHEMA}.leads where "RecordID" = '{record_id}'"""
    assert postgres.query(exact, pg_database) == [("1234567890.12",)], "numbers are exact"
    assert row["FirstContact"] == "2020-09-06"
    assert row["Callback"] is True
    assert row["LastVisit"] == "2021-01-06T12:37:30", "PST is UTC-8: stored as UTC"
    assert row["CreatedOn"] == "2020-09-06T11:37:30", "PDT is UTC-7: stored as UTC"
    assert row["Photo"] == {"Url": "https://x/p.png", "Size": 1024}
    assert row["Location"] == {"Lat": 49.2827, "Lng": -123.1207}
    assert row["Items"] == [{"Part": "Filter", "Qty": "2"}]
    assert row["Summary"] == "", "an empty string stays an empty string"
    assert row["MobilePhone"] is None, "and null stays null"
    assert row["LastName"] == "Dubois-Łukasiewicz 日本 🚀"
    assert all(row[name + "__raw"] is None for name in ("EmployeeCount", "TotalValue"))

    misfit = rows[bad["RecordID"]]
    expected_raw = {
        "EmployeeCount": "about 20",
        "TotalValue": "$99",
        "FirstContact": "next week",
        "Callback": '{"Selection":["Yes","No"]}',
        "LastVisit": "06/01/2021",
    }
    for name, raw in expected_raw.items():
        assert misfit[name] is None, name
        assert misfit[name + "__raw"] == raw, name
    demo = next(r for rid, r in rows.items() if rid not in {good["RecordID"], bad["RecordID"]})
    assert isinstance(demo["Industry"], str)
    assert isinstance(demo["CallbackRequested"], list)
