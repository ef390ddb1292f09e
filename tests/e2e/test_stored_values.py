"""README "Types" checked in what the main job stores, not only in what the tap emits.

`meltano run tap-flowfinity target-postgres`, then each value read back from PostgreSQL as text.
The tap emits numbers exactly (`99.90`); target-postgres 0.8.1 stores a `number` column only as
exactly as a double-precision float (15 significant digits, trailing zeros dropped); numbers
inside a JSON (jsonb) column stay exact.
These tests pin that boundary and the documented workaround (declare the field `string`: the
value is stored as sent, and `::numeric` / `::jsonb` in SQL gives the exact number).
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import SCHEMA
from tests.harness.meltano import MeltanoEnv, MeltanoError, get_bookmarks, run_job, run_meltano

pytestmark = pytest.mark.e2e

LEADS = "leads"
FIELD_TYPES = {
    "Amount": "number",
    "Small": "number",
    "Exact15": "number",
    "Big": "number",
    "AmountText": "string",
    "BigText": "string",
    "Count": "integer",
    "Seen": "date-time",
    "SeenWithOffset": "date-time",
    "Doc": "json",
    "DocText": "string",
}
# What a site sends in an attachment or location field (the simulator's JSON is Python's, so
# its numbers are floats; literal decimals inside JSON are checked on the target alone, below).
DOC = {"Lat": 49.2827, "Lng": -123.1207, "Size": 1024, "price": "9.90", "l": [1, 2.5], "s": "日本"}


def stored(postgres, dbname, record_id, *columns):
    select = ", ".join(f'"{column}"::text' for column in columns)
    query = f"""select {select} from {SCHEMA}.{LEADS} where "RecordID" = '{record_id}'"""
    (row,) = postgres.query(query, dbname)
    return dict(zip(columns, row, strict=True))


def test_numbers_dates_arrays_and_json_as_stored(simulator, meltano_env, postgres, pg_database):
    meltano_env.views = [
        {"name": LEADS, "url": simulator.view_url(LEADS), "field_types": FIELD_TYPES}
    ]
    record = simulator.create(
        LEADS,
        {
            "Amount": "99.90",
            "Small": "0.0000001",
            "Exact15": "1234567890123.45",
            "Big": "12345678901234567.89",
            "AmountText": "99.90",
            "BigText": "12345678901234567.89",
            "Count": "9223372036854775807",
            "Seen": "2020-09-06T04:37:30.123456",
            "SeenWithOffset": "2020-09-06T04:37:30+02:00",
            "Tags": {"Selection": ["a,b", 'c"d', "{x}", "é 日本", "NULL", " sp ", ""]},
            "Doc": DOC,
            "DocText": DOC,
        },
    )

    run_job(meltano_env)

    values = stored(postgres, pg_database, record["RecordID"], *FIELD_TYPES, "Tags")
    # Numbers: exact up to 15 significant digits; the scale (trailing zeros) is not kept.
    assert values["Exact15"] == "1234567890123.45"
    assert values["Small"] == "0.0000001"
    assert values["Amount"] == "99.9", "target-postgres drops the trailing zero"
    assert values["Big"] == "12345678901234568", "17 significant digits: rounded like a float"
    # The workaround: declared `string`, the value is stored as sent; SQL makes it exact.
    assert values["AmountText"] == "99.90"
    assert values["BigText"] == "12345678901234567.89"
    cast = f"""select "BigText"::numeric * 100 from {SCHEMA}.{LEADS} where "BigText" is not null"""
    assert postgres.query(cast, pg_database) == [("1234567890123456789.00",)]
    # Integers are exact over the whole bigint range.
    assert values["Count"] == "9223372036854775807"
    # Date-times: microseconds kept; an explicit offset is converted to UTC.
    assert values["Seen"] == "2020-09-06 04:37:30.123456"
    assert values["SeenWithOffset"] == "2020-09-06 02:37:30"
    # Arrays: every element as sent, separators, quotes, braces and the word NULL included.
    tags = postgres.query(
        f"""select to_json("Tags"), pg_typeof("Tags") from {SCHEMA}.{LEADS} """
        f"""where "RecordID" = '{record["RecordID"]}'""",
        pg_database,
    )
    assert json.loads(tags[0][0] or "") == ["a,b", 'c"d', "{x}", "é 日本", "NULL", " sp ", ""]
    assert tags[0][1] == "text[]"
    # JSON: as sent; declared `string`, the same JSON as text (exact, castable to jsonb).
    doc = f"""select "Doc"::jsonb = '{json.dumps(DOC)}'::jsonb, "DocText"::jsonb = "Doc"
        from {SCHEMA}.{LEADS} where "RecordID" = '{record["RecordID"]}'"""
    assert postgres.query(doc, pg_database) == [("t", "t")]


def test_target_postgres_keeps_numbers_as_far_as_a_float(postgres, pg_database, tmp_path):
    """The limit is target-postgres's, and only its numeric columns': fed to it alone, the
    literal numbers the tap writes lose digits in a `number` column, not inside JSON."""
    env = MeltanoEnv(pg=postgres, dbname=pg_database, home=tmp_path)
    number = {"type": ["number", "null"]}
    schema = {
        "type": "SCHEMA",
        "stream": "amounts",
        "key_properties": ["id"],
        "schema": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "amount": number,
                "big": number,
                "doc": {"type": ["object", "null"]},
                "as_text": {"type": ["string", "null"]},
            },
        },
    }
    # Exactly what the tap writes for a declared number: a JSON number literal, never a float.
    record = (
        '{"type": "RECORD", "stream": "amounts", "record": {"id": 1, "amount": 99.90, '
        '"big": 12345678901234567.89, "doc": {"n": 12345678901234567.89, "p": 2.50}, '
        '"as_text": "12345678901234567.89"}}'
    )
    run_meltano(
        ["invoke", "target-postgres"],
        env=env,
        input=json.dumps(schema) + "\n" + record + "\n",
        timeout=300,
    )
    rows = postgres.query(
        "select amount::text, big::text, doc->>'n', doc->>'p', as_text::numeric::text "
        f"from {SCHEMA}.amounts",
        pg_database,
    )
    # numeric columns lose digits and scale; the same literals inside jsonb stay exact
    assert rows == [
        ("99.9", "12345678901234568", "12345678901234567.89", "2.50", "12345678901234567.89")
    ]


def test_text_with_a_nul_character_stops_the_run_before_its_bookmark(
    simulator, meltano_env, postgres, pg_database
):
    """PostgreSQL text cannot hold U+0000: the load fails loudly and no bookmark moves past it."""
    meltano_env.views = [{"name": LEADS, "url": simulator.view_url(LEADS)}]
    simulator.create(LEADS, {"Summary": "before\u0000after"})

    with pytest.raises(MeltanoError) as failed:
        run_job(meltano_env)

    assert "NUL" in failed.value.stderr
    assert get_bookmarks(env=meltano_env) == {}
