"""Reading the target table back and comparing it with the simulator's truth."""

from __future__ import annotations

import json
import re
import subprocess
import typing as t
from pathlib import Path

SCHEMA = "flowfinity"
DELETED_STATES = {"Deleted"}
# Compared as text: the fields Flowfinity sends as strings and the tap passes through as is.
NOT_COMPARED = {"CreatedOn", "lastSubmissionId", "_sdc_deleted_at"}


def table_rows(postgres: t.Any, dbname: str, table: str) -> dict[str, dict[str, t.Any]]:
    """Every row of a target table as JSON, by RecordID."""
    rows = postgres.query(f"select row_to_json(t) from {SCHEMA}.{table} t", dbname)
    result: dict[str, dict[str, t.Any]] = {}
    for (text,) in rows:
        row = json.loads(text)
        assert row["RecordID"] not in result, f"duplicate RecordID {row['RecordID']} in {table}"
        result[row["RecordID"]] = row
    return result


def assert_table_matches_truth(
    postgres: t.Any,
    dbname: str,
    simulator: t.Any,
    view_key: str,
    table: str | None = None,
    *,
    gone_flagged: bool = False,
) -> None:
    """The table holds every record once, at its latest version, deletes flagged, nothing else.

    `gone_flagged`: rows of records the view no longer shows (purged, out of its filter) may
    be there too, each flagged deleted (what a reconciliation leaves).
    """
    rows = table_rows(postgres, dbname, table or view_key)
    truth = simulator.truth(view_key)
    if gone_flagged:
        gone = set(simulator.gone(view_key)) & set(rows)
        unflagged = sorted(rid for rid in gone if rows[rid]["_sdc_deleted_at"] is None)
        assert not unflagged, f"rows the view no longer shows, not flagged: {unflagged[:5]}"
        rows = {rid: row for rid, row in rows.items() if rid not in gone}
    assert set(rows) == set(truth), (
        f"missing {sorted(set(truth) - set(rows))[:5]}, extra {sorted(set(rows) - set(truth))[:5]}"
    )
    for record_id, record in truth.items():
        row = rows[record_id]
        assert row["lastSubmissionId"] == int(record["lastSubmissionId"]), record_id
        deleted = record.get("State") in DELETED_STATES
        assert (row["_sdc_deleted_at"] is not None) == deleted, record_id
        for key, value in record.items():
            if isinstance(value, str) and key not in NOT_COMPARED:
                assert row.get(key) == value, (record_id, key, row.get(key), value)


def sync_cursors(simulator: t.Any, view_key: str) -> list[int]:
    """The cursors asked from (a discovery without a bookmark asks with none: left out)."""
    return [c for c in simulator.cursor_requests(view_key) if c is not None]


def sync_records_sent(simulator: t.Any, view_key: str) -> int:
    """Records the simulator sent to requests with a cursor: the sync's, and discovery's
    when it sampled from a bookmark."""
    return sum(
        r["records_sent"] for r in simulator.view_requests(view_key) if r["cursor"] is not None
    )


def target_postgres_config(postgres: t.Any, dbname: str) -> dict[str, t.Any]:
    """target-postgres settings as meltano.yml's dev environment gives them."""
    env = postgres.target_env(dbname)
    return {
        "host": env["PG_HOST"],
        "port": int(env["PG_PORT"]),
        "user": env["PG_USER"],
        "password": env["PG_PASSWORD"],
        "database": env["PG_DATABASE"],
        "default_target_schema": SCHEMA,
        "load_method": "upsert",
        "add_record_metadata": True,
        "hard_delete": False,
        "use_copy": True,
        "validate_records": False,
    }


def pipe(
    tap_config: Path, target: str, target_config: Path, state: Path | None = None
) -> list[dict[str, t.Any]]:
    """`tap-flowfinity --config c.json [--state s.json] | <target> --config t.json`: a plain pipe
    without --catalog, the target as `meltano install` put it; returns the target's STATEs."""
    from tests.harness.meltano import TAP, ensure_installed, plugin_executable

    ensure_installed("tap-flowfinity", target)
    command = f"{TAP} --config {tap_config}"
    if state is not None:
        command += f" --state {state}"
    command += f" | {plugin_executable(target)} --config {target_config}"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def pipe_to_postgres(
    tap_config: dict[str, t.Any],
    postgres: t.Any,
    dbname: str,
    workdir: Path,
    state: dict[str, t.Any] | None = None,
) -> dict[str, t.Any]:
    """The plain pipe into target-postgres; returns the last STATE the target emitted."""
    tap_path, target_path = workdir / "tap.json", workdir / "target.json"
    tap_path.write_text(json.dumps(tap_config))
    target_path.write_text(json.dumps(target_postgres_config(postgres, dbname)))
    state_path = None
    if state is not None:
        state_path = workdir / "state.json"
        state_path.write_text(json.dumps(state))
    states = pipe(tap_path, "target-postgres", target_path, state_path)
    return states[-1] if states else {}


README = Path(__file__).resolve().parents[2] / "README.md"


def recipe(name: str) -> str:
    """The bash block of the README that starts with `# recipe: <name>`."""
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        if block.startswith(f"# recipe: {name}\n"):
            return block
    raise AssertionError(f"README has no recipe {name!r}")
