"""The main job end to end: `meltano run tap-flowfinity target-postgres`, simulator to PostgreSQL.

Proves: a first sync loads every record once; the next run asks only from the stored bookmark
(less the lookback overlap) and brings inserts, updates and state changes; the table equals
the simulator's truth after every run; two views land in two tables.
"""

from __future__ import annotations

import pytest

from tests.e2e.helpers import (
    assert_table_matches_truth,
    sync_cursors,
    sync_records_sent,
    table_rows,
)
from tests.harness.meltano import get_bookmarks, run_job

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

LEADS = "leads"
DEFAULT_LOOKBACK = 1000


def max_cursor(simulator, view_key):
    return max(int(r["lastSubmissionId"]) for r in simulator.truth(view_key).values())


def test_first_sync_loads_every_view_once(simulator, meltano_env, postgres, pg_database):
    run_job(meltano_env)
    bookmarks = get_bookmarks(env=meltano_env)
    assert set(bookmarks) == set(simulator.view_keys()) == {"leads", "visits"}
    for key in simulator.view_keys():
        assert_table_matches_truth(postgres, pg_database, simulator, key)
        bookmark = bookmarks[key]
        assert bookmark["replication_key"] == "lastSubmissionId"
        assert bookmark["replication_key_value"] == max_cursor(simulator, key)
        # A first sync reads the whole view anyway, so it is a completed reconciliation.
        assert "reconciling" not in bookmark
        assert set(bookmark["reconciled"]) == {"at", "version"}
        assert sync_cursors(simulator, key) == [max_cursor(simulator, key)], (
            "the first sync asks without a cursor, then once from the last id: one extra request"
        )


@pytest.mark.slow
def test_second_sync_reads_only_from_the_bookmark(simulator, meltano_env, postgres, pg_database):
    run_job(meltano_env)
    bookmark = get_bookmarks(env=meltano_env)[LEADS]["replication_key_value"]
    overlap = [
        r
        for r in simulator.truth(LEADS).values()
        if int(r["lastSubmissionId"]) > bookmark - DEFAULT_LOOKBACK
    ]
    simulator.advance_counter(5000)  # other apps' submissions between two scheduled runs
    created = simulator.create(LEADS, {"FirstName": "Ada", "Company": "New Co"})
    updated_id = sorted(simulator.truth(LEADS))[3]
    simulator.update(LEADS, updated_id, {"Company": "Renamed Inc"})
    simulator.clear_request_log()

    run_job(meltano_env)

    cursors = sync_cursors(simulator, LEADS)
    assert cursors[0] == bookmark - DEFAULT_LOOKBACK, "from the bookmark, less the lookback"
    # Meltano discovers before every run of this editable install; discovery samples from
    # where the sync starts, so it reads the same few records again, never the history.
    assert None not in simulator.cursor_requests(LEADS)
    assert sync_records_sent(simulator, LEADS) == 2 * (2 + len(overlap))
    rows = table_rows(postgres, pg_database, LEADS)
    assert rows[created["RecordID"]]["FirstName"] == "Ada"
    assert rows[updated_id]["Company"] == "Renamed Inc"
    assert_table_matches_truth(postgres, pg_database, simulator, LEADS)
    assert get_bookmarks(env=meltano_env)[LEADS]["replication_key_value"] == max_cursor(
        simulator, LEADS
    )


def source_columns(rows):
    """Rows without the loader's own _sdc_* bookkeeping (a re-read refreshes those)."""
    return {
        rid: {k: v for k, v in row.items() if not k.startswith("_sdc_") or k == "_sdc_deleted_at"}
        for rid, row in rows.items()
    }


def test_a_run_with_nothing_new_changes_nothing(simulator, meltano_env, postgres, pg_database):
    run_job(meltano_env)
    before = get_bookmarks(env=meltano_env)
    rows_before = source_columns(table_rows(postgres, pg_database, LEADS))
    run_job(meltano_env)
    assert get_bookmarks(env=meltano_env) == before
    assert source_columns(table_rows(postgres, pg_database, LEADS)) == rows_before


def test_a_server_that_caps_responses_still_delivers_everything(
    simulator, meltano_env, postgres, pg_database
):
    simulator.max_records_per_response = 7
    run_job(meltano_env)
    for key in simulator.view_keys():
        assert_table_matches_truth(postgres, pg_database, simulator, key)
        ids = sorted(int(r["lastSubmissionId"]) for r in simulator.truth(key).values())
        assert sync_cursors(simulator, key) == capped_cursors(ids, cap=7)


def capped_cursors(ids: list[int], cap: int) -> list[int]:
    """What a read asks of a server capping answers at `cap`, after the first (cursorless) ask.

    The second answer is asked from the last id of the first (the server may not cap at
    all); once it is full too, the server caps, and an answer may end inside a group of
    records sharing one id: the first answer's last id gets one request reading its group
    (from one below it), and every later request asks from one below the last id, so
    each answer brings `cap - 1` new records until one brings only the last id again;
    then one ask after the last id (the cap may have fallen there) gets the empty end.
    """
    cursors = [ids[cap - 1], ids[cap - 1] - 1]
    last = min(2 * cap - 1, len(ids) - 1)
    while True:
        cursors.append(ids[last] - 1)
        if last == len(ids) - 1:
            return [*cursors, ids[last]]
        last = min(last + cap - 1, len(ids) - 1)
