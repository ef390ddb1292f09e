"""The same three syncs into every Singer target README "Targets" lists, each as Meltano runs it.

For each target: `meltano run tap-flowfinity <target>` (the plugin in its own virtualenv, as
`meltano install` makes it, configured by meltano.yml), then create, update, delete and restore
records in the simulator, then the same command again; then purge a record (Flowfinity's Delete)
and run once more with `reconcile_every_hours` 0. Checked after each run, against the
simulator's truth, in what the target stored:

- upserting targets (database tables): one row per record, at its latest version;
- appending targets (files): one line per record version read, the latest of which is the
  truth (the lookback overlap re-reads some records: that is a repeated version, not a loss);
- deletes flagged (`_sdc_deleted_at` set) and a restore unflagged;
- the bookmark Meltano stored is the newest submission id, and the second run asks the view
  from it (less the lookback): the target echoed the tap's STATE back;
- what the target does with the reconciling run's ACTIVATE_VERSION, as observed and pinned
  here (README "Targets"): target-postgres flags exactly the purged record's row; the others
  keep it as it was, silently or with the log line each prints.

The column types each target makes and how it stores a declared number (`99.90`), a date, a
date-time, a multiple choice and a JSON object are pinned too: they are README "Targets".
"""

from __future__ import annotations

import csv
import json
import subprocess
import typing as t
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.helpers import sync_cursors
from tests.harness.meltano import (
    MeltanoEnv,
    ensure_installed,
    get_bookmarks,
    plugin_executable,
    run_meltano,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LEADS = "leads"
SCHEMA = "flowfinity"  # meltano.yml: default_target_schema of every database target
LOOKBACK = 1000  # the tap's default
# meltano.yml's file name; a file named like the schema makes `flowfinity.leads` ambiguous
DUCKDB_FILE = "warehouse.duckdb"

Row = dict[str, t.Any]
# One field of each kind whose storage differs between targets (README "Targets").
FIELD_TYPES = {"TotalValue": "number", "FirstContact": "date", "Photo": "json"}
PHOTO = {"Url": "https://x/p.png", "Size": 1024}
TYPED_VALUES = {
    "TotalValue": "99.90",
    "FirstContact": "2020-09-06T00:00:00.000",
    "Photo": PHOTO,
    "CallbackRequested": {"Selection": ["Yes", "Later"]},
    "CreatedOn": "2020-09-06T04:37:30.000",
}


@dataclass(frozen=True)
class Target:
    """How one target stores a stream, and how to read it back."""

    name: str
    upserts: bool  # one row per key (tables) or one line per record read (files)
    column_types: dict[str, str]  # what it makes of the tap's types (README "Targets")
    typed: dict[str, t.Any]  # TYPED_VALUES as stored, read back with exact decimals
    # ACTIVATE_VERSION: whether the target flags the rows of older versions, and the line it
    # logs on receiving one (None: it says nothing about it)
    flags_older_versions: bool = False
    activate_version_line: str | None = None


# Both PostgreSQL targets, read back through row_to_json: the same values (not the same types).
AS_POSTGRES_STORES = {
    "TotalValue": Decimal("99.9"),  # the tap sent 99.90: both keep it only as a float would
    "FirstContact": "2020-09-06",
    "CreatedOn": "2020-09-06T04:37:30",
    "CallbackRequested": ["Yes", "Later"],
    "Photo": PHOTO,
}

TARGETS = [
    Target(
        "target-postgres",
        upserts=True,
        column_types={
            "lastSubmissionId": "bigint",
            "CreatedOn": "timestamp without time zone",
            "CallbackRequested": "ARRAY",
            "_sdc_deleted_at": "timestamp without time zone",
            "TotalValue": "numeric",
            "FirstContact": "date",
            "Photo": "jsonb",
        },
        typed=AS_POSTGRES_STORES,
        flags_older_versions=True,
        activate_version_line="An activate version message for 'leads' was received. Draining...",
    ),
    Target(
        "target-postgres-pipelinewise",
        upserts=True,
        column_types={
            "lastsubmissionid": "bigint",
            "createdon": "timestamp without time zone",
            "callbackrequested": "jsonb",
            "_sdc_deleted_at": "timestamp without time zone",
            "totalvalue": "double precision",
            "firstcontact": "character varying",
            "photo": "jsonb",
        },
        typed=AS_POSTGRES_STORES,
    ),
    Target(
        "target-duckdb",
        upserts=True,
        column_types={
            "lastsubmissionid": "BIGINT",
            "createdon": "TIMESTAMP",
            "callbackrequested": "JSON",
            "_sdc_deleted_at": "TIMESTAMP",
            "totalvalue": "DOUBLE",
            "firstcontact": "VARCHAR",
            "photo": "JSON",
        },
        typed={
            "TotalValue": Decimal("99.9"),
            "FirstContact": "2020-09-06",
            "CreatedOn": "2020-09-06 04:37:30",
            "CallbackRequested": '["Yes", "Later"]',  # JSON text
            "Photo": json.dumps(PHOTO),
        },
    ),
    Target(
        "target-jsonl",
        upserts=False,
        column_types={},
        typed={
            "TotalValue": Decimal("99.90"),  # the tap's output, as emitted
            "FirstContact": "2020-09-06",
            "CreatedOn": "2020-09-06T04:37:30.000",
            "CallbackRequested": ["Yes", "Later"],
            "Photo": PHOTO,
        },
        activate_version_line="WARNING Unknown message type ACTIVATE_VERSION in message",
    ),
    Target(
        "target-csv",
        upserts=False,
        column_types={},
        typed={
            "TotalValue": "99.90",
            "FirstContact": "2020-09-06",
            "CreatedOn": "2020-09-06 04:37:30",
            "CallbackRequested": "['Yes', 'Later']",  # Python's repr, not JSON
            "Photo": repr(PHOTO),
        },
        activate_version_line=(
            "ACTIVATE_VERSION message received but not implemented by this target. Ignoring."
        ),
    ),
]


def canonical(row: Row) -> Row:
    """A stored row with the tap's field names (some targets lower-case them) and types."""
    by_lower = {key.lower(): value for key, value in row.items()}
    deleted_at = by_lower.get("_sdc_deleted_at")
    return {
        "RecordID": str(by_lower["recordid"]),
        "lastSubmissionId": int(by_lower["lastsubmissionid"]),
        "State": by_lower.get("state"),
        "Company": by_lower.get("company"),
        "_sdc_deleted_at": deleted_at if deleted_at not in ("", None) else None,
    }


def read_postgres(postgres: t.Any, dbname: str) -> list[Row]:
    rows = postgres.query(f"select row_to_json(t) from {SCHEMA}.{LEADS} t", dbname)
    return [json.loads(text, parse_float=Decimal) for (text,) in rows]


def postgres_column_types(postgres: t.Any, dbname: str) -> dict[str, str]:
    rows = postgres.query(
        "select column_name, data_type from information_schema.columns "
        f"where table_schema = '{SCHEMA}' and table_name = '{LEADS}'",
        dbname,
    )
    return {str(name): str(kind) for name, kind in rows}


DUCKDB_DUMP = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
cur = con.execute("select * from {schema}.{table}")
names = [d[0] for d in cur.description]
rows = [dict(zip(names, r)) for r in cur.fetchall()]
types = dict(con.execute(
    "select column_name, data_type from information_schema.columns "
    "where table_schema = '{schema}' and table_name = '{table}'").fetchall())
print(json.dumps({{"rows": rows, "types": types}}, default=str))
"""


def read_duckdb(path: Path) -> tuple[list[Row], dict[str, str]]:
    """Rows and column types, read with the DuckDB the target itself runs on."""
    python = plugin_executable("target-duckdb").parent / "python"
    script = DUCKDB_DUMP.format(schema=SCHEMA, table=LEADS)
    out = subprocess.run(
        [str(python), "-c", script, str(path)], capture_output=True, text=True, check=True
    ).stdout
    dump = json.loads(out, parse_float=Decimal)
    return dump["rows"], dump["types"]


def read_files(out_dir: Path, pattern: str) -> list[Row]:
    rows: list[Row] = []
    for path in sorted(out_dir.glob(pattern)):
        with path.open(newline="", encoding="utf-8") as f:
            if path.suffix == ".csv":
                rows.extend(csv.DictReader(f))
            else:
                rows.extend(json.loads(line, parse_float=Decimal) for line in f if line.strip())
    return rows


class Stored:
    """Reads back what one target stored for the leads stream."""

    def __init__(self, target: Target, postgres: t.Any, dbname: str, out_dir: Path) -> None:
        self.target, self.postgres, self.dbname, self.out_dir = target, postgres, dbname, out_dir

    def env(self) -> dict[str, str]:
        """Meltano <PLUGIN>_<SETTING> overrides that point the target into this test."""
        return {
            "target-jsonl": {"TARGET_JSONL_DESTINATION_PATH": str(self.out_dir)},
            "target-csv": {"TARGET_CSV_OUTPUT_PATH": str(self.out_dir)},
            "target-duckdb": {"TARGET_DUCKDB_FILEPATH": str(self.out_dir / DUCKDB_FILE)},
        }.get(self.target.name, {})

    def rows(self) -> list[Row]:
        return [canonical(row) for row in self.raw_rows()]

    def raw_rows(self) -> list[Row]:
        name = self.target.name
        if name in ("target-postgres", "target-postgres-pipelinewise"):
            return read_postgres(self.postgres, self.dbname)
        if name == "target-duckdb":
            return read_duckdb(self.out_dir / DUCKDB_FILE)[0]
        if name == "target-jsonl":
            return read_files(self.out_dir, f"{LEADS}.jsonl")
        return read_files(self.out_dir, f"{LEADS}-*.csv")

    def column_types(self) -> dict[str, str]:
        if self.target.name == "target-duckdb":
            return read_duckdb(self.out_dir / DUCKDB_FILE)[1]
        return postgres_column_types(self.postgres, self.dbname)


def truth_rows(simulator: t.Any) -> dict[str, Row]:
    return {
        record_id: {
            "lastSubmissionId": int(record["lastSubmissionId"]),
            "deleted": record.get("State") == "Deleted",
            "Company": record.get("Company"),
        }
        for record_id, record in simulator.truth(LEADS).items()
    }


def assert_stored_matches_truth(target: Target, rows: list[Row], simulator: t.Any) -> None:
    truth = truth_rows(simulator)
    latest: dict[str, Row] = {}
    for row in rows:
        known = latest.get(row["RecordID"])
        if target.upserts:
            assert known is None, f"{target.name}: two rows for {row['RecordID']}"
        if known is None or row["lastSubmissionId"] >= known["lastSubmissionId"]:
            latest[row["RecordID"]] = row
    assert set(latest) == set(truth), (
        f"{target.name}: missing {sorted(set(truth) - set(latest))[:5]}, "
        f"extra {sorted(set(latest) - set(truth))[:5]}"
    )
    for record_id, expected in truth.items():
        row = latest[record_id]
        assert row["lastSubmissionId"] == expected["lastSubmissionId"], (target.name, record_id)
        assert row["Company"] == expected["Company"], (target.name, record_id)
        assert (row["_sdc_deleted_at"] is not None) == expected["deleted"], (
            target.name,
            record_id,
            row,
        )


def flagged(rows: list[Row]) -> set[str]:
    return {row["RecordID"] for row in rows if row["_sdc_deleted_at"] is not None}


def target_lines_about_activate_version(target: Target, run_stderr: str) -> list[str]:
    """The target's own log lines (Meltano prefixes them with its name) naming the message."""
    return [
        line
        for line in run_stderr.splitlines()
        if f"] {target.name} " in line and "activate" in line.lower()
    ]


def newest(simulator: t.Any) -> int:
    return max(int(r["lastSubmissionId"]) for r in simulator.truth(LEADS).values())


@pytest.mark.parametrize("target", TARGETS, ids=[target.name for target in TARGETS])
def test_first_incremental_and_reconciling_syncs(
    target: Target,
    simulator: t.Any,
    postgres: t.Any,
    pg_database: str,
    meltano_env: MeltanoEnv,
    tmp_path: Path,
) -> None:
    ensure_installed("tap-flowfinity", target.name)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    stored = Stored(target, postgres, pg_database, out_dir)
    env = meltano_env
    env.views = [{"name": LEADS, "url": simulator.view_url(LEADS), "field_types": FIELD_TYPES}]
    env.extra.update(stored.env())
    state_id = f"dev:tap-flowfinity-to-{target.name}"
    ids = sorted(simulator.truth(LEADS))
    simulator.delete(LEADS, ids[0])  # deleted before the first sync: restored later

    run_meltano(["run", "tap-flowfinity", target.name], env=env)

    first = stored.rows()
    assert len(first) == len(ids), "the first sync stores each record once"
    assert_stored_matches_truth(target, first, simulator)
    bookmark = get_bookmarks(state_id, env=env)[LEADS]["replication_key_value"]
    assert bookmark == newest(simulator)
    for column, kind in target.column_types.items():
        assert stored.column_types()[column] == kind, (target.name, column)

    simulator.advance_counter(5000)  # other apps' submissions between two scheduled runs
    created = simulator.create(LEADS, {"Company": "New Co", **TYPED_VALUES})["RecordID"]
    simulator.update(LEADS, ids[1], {"Company": "Renamed Inc"})
    simulator.delete(LEADS, ids[2])
    simulator.restore(LEADS, ids[0])
    simulator.clear_request_log()

    run_meltano(["run", "tap-flowfinity", target.name], env=env)

    assert sync_cursors(simulator, LEADS)[0] == bookmark - LOOKBACK, "resumed from the bookmark"
    second = stored.rows()
    # An upserting target gains the one record created; an appending one a line per record the
    # sync read: every current record above where it started (discovery's sample is not loaded).
    read = [
        r
        for r in simulator.truth(LEADS).values()
        if int(r["lastSubmissionId"]) > bookmark - LOOKBACK
    ]
    added = 1 if target.upserts else len(read)
    assert len(second) == len(first) + added
    assert_stored_matches_truth(target, second, simulator)
    latest = {row["RecordID"]: row for row in sorted(second, key=lambda r: r["lastSubmissionId"])}
    assert latest[created]["Company"] == "New Co"
    raw = next(r for r in stored.raw_rows() if canonical(r)["RecordID"] == created)
    by_lower = {key.lower(): value for key, value in raw.items()}
    as_stored = {name: by_lower[name.lower()] for name in target.typed}
    assert repr(as_stored) == repr(target.typed), target.name  # repr: 99.9 is not 99.90
    assert latest[ids[1]]["Company"] == "Renamed Inc"
    assert latest[ids[2]]["_sdc_deleted_at"] is not None
    assert latest[ids[0]]["_sdc_deleted_at"] is None
    assert get_bookmarks(state_id, env=env)[LEADS]["replication_key_value"] == newest(simulator)

    # A record purged (Flowfinity's Delete): no incremental run can see it; a reconciliation
    # reads the whole view and ends with ACTIVATE_VERSION, which only some targets act on.
    purged = ids[3]
    simulator.purge(LEADS, purged)
    reconciling = run_meltano(["run", "tap-flowfinity", target.name], env=env.reconciling())

    third = stored.rows()
    # The pass re-sends every record the view shows: an appending target gains a line each.
    added = 0 if target.upserts else len(simulator.truth(LEADS))
    assert len(third) == len(second) + added
    expected_flags = {purged} if target.flags_older_versions else set()
    assert flagged(third) - flagged(second) == expected_flags, target.name
    assert purged in {row["RecordID"] for row in third}, "kept: flagged, or as it was"
    assert_stored_matches_truth(target, [r for r in third if r["RecordID"] != purged], simulator)
    lines = target_lines_about_activate_version(target, reconciling.stderr)
    if target.activate_version_line is None:
        assert lines == [], f"{target.name} said nothing about ACTIVATE_VERSION before"
    else:
        assert any(target.activate_version_line in line for line in lines), (target.name, lines)
    assert get_bookmarks(state_id, env=env)[LEADS]["replication_key_value"] == newest(simulator)


def test_pinned_duckdb_keeps_the_first_row_of_an_all_text_batch(tmp_path: Path) -> None:
    """target-duckdb 0.8.0 COPYs each batch from a header-less CSV file; DuckDB after 1.0.0
    sniffs a header, and in a batch whose values are all text it takes the first row for one:
    that row is lost, the run exits 0 and the bookmark moves. The pinned DuckDB 1.0.0 does not."""
    ensure_installed("target-duckdb")
    schema = {
        "type": "SCHEMA",
        "stream": LEADS,
        "key_properties": ["RecordID"],
        "schema": {
            "type": "object",
            "properties": {"RecordID": {"type": "string"}, "Company": {"type": ["string", "null"]}},
        },
    }
    records = [
        {"type": "RECORD", "stream": LEADS, "record": {"RecordID": rid, "Company": company}}
        for rid, company in (("000001", "Alice Ltd"), ("000002", "Bob Inc"))
    ]
    database = tmp_path / DUCKDB_FILE
    env = MeltanoEnv(home=tmp_path / "meltano", extra={"TARGET_DUCKDB_FILEPATH": str(database)})
    run_meltano(
        ["invoke", "target-duckdb"],
        env=env,
        input="".join(json.dumps(m) + "\n" for m in [schema, *records]),
        timeout=300,
    )
    rows, _ = read_duckdb(database)
    assert sorted(row["recordid"] for row in rows) == ["000001", "000002"]
