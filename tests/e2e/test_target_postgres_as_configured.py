"""target-postgres as meltano.yml configures it keeps the facts the tap's promise relies on.

With target-postgres 0.8.1 as configured in meltano.yml (docs/contract.md): rows are upserted
by key_properties (one row per RecordID, at its latest version), `_sdc_deleted_at` from the tap
reaches the table (the Singer SDK strips it when `add_record_metadata` is false), and STATE
comes out only after the records before it were written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.meltano import (
    MeltanoEnv,
    ensure_installed,
    get_state,
    list_state_ids,
    run_meltano,
)
from tests.harness.postgres import ThrowawayPostgres

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)


def test_target_postgres_upserts_keeps_deleted_at_and_emits_state(
    postgres: ThrowawayPostgres, pg_database: str, tmp_path: Path
) -> None:
    ensure_installed()
    env = MeltanoEnv(pg=postgres, dbname=pg_database, home=tmp_path)
    schema = {
        "type": "SCHEMA",
        "stream": "leads",
        "key_properties": ["RecordID"],
        "bookmark_properties": ["lastSubmissionId"],
        "schema": {
            "type": "object",
            "properties": {
                "RecordID": {"type": "string"},
                "Company": {"type": ["string", "null"]},
                "lastSubmissionId": {"type": "integer"},
                "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
    }

    def record(rid: str, company: str, sub: int, deleted: str | None = None) -> dict:
        rec = {"RecordID": rid, "Company": company, "lastSubmissionId": sub}
        return {"type": "RECORD", "stream": "leads", "record": {**rec, "_sdc_deleted_at": deleted}}

    def state(sub: int) -> dict:
        bookmark = {"replication_key": "lastSubmissionId", "replication_key_value": sub}
        return {"type": "STATE", "value": {"bookmarks": {"leads": bookmark}}}

    messages = [
        schema,
        record("000001", "A", 10),
        record("000002", "B", 11),
        state(11),
        record("000001", "A2", 12),
        record("000002", "B", 13, deleted="2024-05-01T10:00:00+00:00"),
        state(13),
    ]
    result = run_meltano(
        ["invoke", "target-postgres"],
        env=env,
        input="".join(json.dumps(m) + "\n" for m in messages),
        timeout=300,
    )
    emitted = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert emitted and emitted[-1] == state(13)["value"]
    rows = postgres.query(
        'SELECT "RecordID", "Company", "lastSubmissionId", _sdc_deleted_at IS NOT NULL '
        "FROM flowfinity.leads ORDER BY 1",
        dbname=pg_database,
    )
    assert rows == [("000001", "A2", "12", "f"), ("000002", "B", "13", "t")]
    assert list_state_ids(env) == []  # `invoke` stores nothing; only `run` does
    assert get_state(env=env) == {}
