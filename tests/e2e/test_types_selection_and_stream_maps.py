"""Types, schema evolution and the Singer surface (catalog, selection, stream maps), in-process.

The tap runs against the simulator over HTTP; its Singer output is read from stdout.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from decimal import Decimal

import pytest

from flowfinity_simulator import Fault, Simulator
from tap_flowfinity.fieldtypes import FieldTypeError
from tap_flowfinity.tap import TapFlowfinity

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

# What every integer column declares: the range the tap enforces (bigint in every target).
INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}

PASSWORD = "types-tests-password"


@pytest.fixture
def sim():
    with Simulator(password=PASSWORD, demo_records=6) as server:
        yield server


def config(sim, view_extra=None, **extra):
    view = {"name": "leads", "url": sim.view_url("leads"), **(view_extra or {})}
    return {"username": "integration", "password": PASSWORD, "views": [view], **extra}


def run(capsys, cfg, *, catalog=None, state=None):
    """Sync in-process; return the Singer messages written to stdout."""
    TapFlowfinity(config=cfg, catalog=catalog, state=state).sync_all()
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def parse(out):
    return [json.loads(line) for line in out.splitlines()]


def records(messages):
    return [m["record"] for m in messages if m["type"] == "RECORD"]


def schemas(messages):
    return [m["schema"] for m in messages if m["type"] == "SCHEMA"]


def discover(cfg):
    return TapFlowfinity(config=cfg).catalog_dict


def meltano_catalog(cfg, deselect=()):
    """A catalog as Meltano passes it with `select: ['*.*']` (and `!leads.<field>` rules)."""
    catalog = copy.deepcopy(discover(cfg))
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            crumb = entry["breadcrumb"]
            selected = not (crumb and crumb[-1] in deselect)
            entry["metadata"]["selected"] = selected
    return catalog


def record_by_id(messages, record_id):
    return next(r for r in records(messages) if r["RecordID"] == record_id)


# Schema evolution


@pytest.mark.parametrize("with_catalog", [False, True], ids=["discovered", "meltano-catalog"])
def test_a_field_added_after_discovery_reaches_the_output(sim, capsys, with_catalog):
    cfg = config(sim, discovery_sample_size=3)
    catalog = meltano_catalog(cfg) if with_catalog else None
    new = sim.create("leads", {"Region": "Nord", "Tags": {"Selection": ["a", "b"]}})
    later = sim.create("leads", {"Region": "Süd"})

    messages = run(capsys, cfg, catalog=catalog)

    first_schema = schemas(messages)[0]
    assert "Region" not in first_schema["properties"]
    types = [m["type"] for m in messages]
    carrier = next(
        i
        for i, m in enumerate(messages)
        if m["type"] == "RECORD" and m["record"]["RecordID"] == new["RecordID"]
    )
    assert types[carrier - 1] == "SCHEMA", "the new SCHEMA comes right before the record"
    evolved = messages[carrier - 1]["schema"]["properties"]
    assert evolved["Region"] == {"type": ["string", "null"]}
    assert evolved["Tags"] == {"type": ["array", "null"], "items": {"type": "string"}}
    assert record_by_id(messages, new["RecordID"])["Region"] == "Nord"
    assert record_by_id(messages, new["RecordID"])["Tags"] == ["a", "b"]
    assert record_by_id(messages, later["RecordID"])["Region"] == "Süd"
    assert types.count("SCHEMA") == 2, "one SCHEMA per change, not per record"


def test_new_fields_follow_the_stream_selection_and_deselected_fields_never_leave(sim, capsys):
    cfg = config(sim, discovery_sample_size=3)
    catalog = meltano_catalog(cfg, deselect={"EmailAddress"})
    sim.create("leads", {"Region": "Nord", "EmailAddress": "secret@example.com"})

    messages = run(capsys, cfg, catalog=catalog)

    assert all("EmailAddress" not in r for r in records(messages))
    assert all("EmailAddress" not in s["properties"] for s in schemas(messages))
    assert "secret@example.com" not in json.dumps(messages)
    assert records(messages)[-1]["Region"] == "Nord"


def test_a_deselected_misfit_does_not_leak_into_a_side_column(sim, capsys):
    cfg = config(sim, {"field_types": {"EmailAddress": "integer"}}, discovery_sample_size=3)
    catalog = meltano_catalog(cfg, deselect={"EmailAddress", "EmailAddress__raw"})
    messages = run(capsys, cfg, catalog=catalog)
    assert "@example.com" not in json.dumps(messages)


def test_stream_maps_hash_a_field_and_apply_to_new_fields(sim, capsys):
    cfg = config(
        sim,
        discovery_sample_size=3,
        stream_maps={"leads": {"EmailAddress": "md5(EmailAddress)", "Secret": None}},
    )
    new = sim.create("leads", {"EmailAddress": "ada@example.com", "Secret": "x", "Region": "N"})
    messages = run(capsys, cfg, catalog=meltano_catalog(cfg))
    row = record_by_id(messages, new["RecordID"])
    assert row["EmailAddress"] == hashlib.md5(b"ada@example.com").hexdigest()
    assert "Secret" not in row, "a field removed by a stream map stays removed when it appears"
    assert row["Region"] == "N"
    assert all("Secret" not in s["properties"] for s in schemas(messages))


def test_a_fixed_field_list_through_stream_maps_ignores_new_fields(sim, capsys):
    keep = {"RecordID": "RecordID", "lastSubmissionId": "lastSubmissionId", "__else__": None}
    cfg = config(sim, discovery_sample_size=3, stream_maps={"leads": keep})
    sim.create("leads", {"Region": "N"})
    messages = run(capsys, cfg)
    assert all(set(r) <= {"RecordID", "lastSubmissionId"} for r in records(messages))


# Types end to end through the stream


def test_declared_types_and_the_keep_raw_policy(sim, capsys):
    cfg = config(
        sim,
        {
            "field_types": {
                "EmployeeCount": "integer",
                "TotalValue": "number",
                "FirstContact": "date",
                "CallbackRequested": "boolean",
            }
        },
        timezone="America/Vancouver",
    )
    bad = sim.create("leads", {"EmployeeCount": "about 20", "TotalValue": "99.90"})
    messages = run(capsys, cfg)
    props = schemas(messages)[0]["properties"]
    assert props["EmployeeCount__raw"] == {"type": ["string", "null"]}
    for row in records(messages):
        assert row["CreatedOn"].endswith("+00:00")
        assert row["CallbackRequested"] in (True, False)
        assert len(row["FirstContact"]) == 10
    row = record_by_id(messages, bad["RecordID"])
    assert row["EmployeeCount"] is None
    assert row["EmployeeCount__raw"] == "about 20"
    assert row["TotalValue"] == 99.90
    good = records(messages)[0]
    assert isinstance(good["EmployeeCount"], int)
    assert good["EmployeeCount__raw"] is None, "a value that fits clears the side column"


def test_a_misfit_in_an_inferred_type_gets_a_side_column_on_the_fly(sim, capsys):
    bad = sim.create("leads", {"CreatedOn": "last Tuesday"})
    messages = run(capsys, config(sim))
    row = record_by_id(messages, bad["RecordID"])
    assert row["CreatedOn"] is None
    assert row["CreatedOn__raw"] == "last Tuesday"
    assert "CreatedOn__raw" in schemas(messages)[-1]["properties"]


def test_the_fail_policy_names_the_view_record_and_field(sim, capsys):
    bad = sim.create("leads", {"EmployeeCount": "about 20"})
    cfg = config(sim, {"field_types": {"EmployeeCount": "integer"}}, on_type_error="fail")
    with pytest.raises(FieldTypeError) as error:
        run(capsys, cfg)
    message = str(error.value)
    assert "'leads'" in message
    assert bad["RecordID"] in message
    assert "'EmployeeCount'" in message
    assert "integer" in message


def test_the_records_before_a_failing_one_are_written_before_the_error(sim, capsys):
    """The writer buffers RECORDs; a failure mid-stream must not leave them in its buffer."""
    bad = sim.create("leads", {"EmployeeCount": "about 20"})
    cfg = config(sim, {"field_types": {"EmployeeCount": "integer"}}, on_type_error="fail")
    tap = TapFlowfinity(config=cfg)
    capsys.readouterr()
    with pytest.raises(FieldTypeError):
        tap.sync_all()
    written = [r["RecordID"] for r in records(parse(capsys.readouterr().out))]
    assert sorted(written) == sorted(set(sim.truth("leads")) - {bad["RecordID"]})


def test_flattening_can_be_turned_off(sim, capsys):
    messages = run(capsys, config(sim, {"flatten_selections": False}))
    row = records(messages)[0]
    assert row["Industry"] == {"Selection": row["Industry"]["Selection"]}
    assert isinstance(row["CallbackRequested"]["Selection"], list)


def test_nested_json_unicode_empty_strings_and_nulls_stay_distinct(sim, capsys):
    fields = {
        "Photo": {"Url": "https://x/p.png", "Size": 1024},
        "Location": {"Lat": 49.2827, "Lng": -123.1207},
        "Items": [{"Part": "Filter", "Qty": "2"}, {"Part": "Ölwanne", "Qty": "1"}],
        "Summary": "",
        "MobilePhone": None,
        "LastName": "Dubois-Łukasiewicz 日本 🚀",
    }
    created = sim.create("leads", fields)
    messages = run(capsys, config(sim))
    row = record_by_id(messages, created["RecordID"])
    for key, value in fields.items():
        assert row[key] == value, key
    props = schemas(messages)[-1]["properties"]
    assert props["Photo"]["type"] == ["object", "null"]
    assert props["Items"]["type"] == ["array", "null"]


def test_a_json_number_reaches_the_output_exactly(sim, capsys):
    """Non-integer JSON numbers are decoded as exact decimals and written as sent."""
    tap = TapFlowfinity(config=config(sim))  # discovery reads the view as served
    capsys.readouterr()
    body = (
        '[{"RecordID": "000000001", "lastSubmissionId": "5", "State": "Open", '
        '"Amount": 12345678901234567.89, "Rate": 0.1}]'
    )
    sim.faults.add(Fault("body", body=body))  # the sync's first answer
    tap.sync_all()
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if '"RecordID":"000000001"' in line)
    assert '"Amount":12345678901234567.89' in line
    assert '"Rate":0.1' in line
    row = json.loads(line, parse_float=Decimal)["record"]
    assert row["Amount"] == Decimal("12345678901234567.89")


# Discovery


def test_discovery_is_stable(sim):
    cfg = config(sim, {"field_types": {"TotalValue": "number"}})
    first = json.dumps(discover(cfg), sort_keys=False)
    second = json.dumps(discover(cfg), sort_keys=False)
    assert first == second


def test_discovery_infers_choices_and_honours_declared_types(sim):
    cfg = config(sim, {"field_types": {"EmployeeCount": "integer", "Due": "date"}})
    props = discover(cfg)["streams"][0]["schema"]["properties"]
    assert props["Industry"] == {"type": ["string", "null"]}
    assert props["CallbackRequested"] == {"type": ["array", "null"], "items": {"type": "string"}}
    assert props["EmployeeCount"] == {"type": ["integer", "null"], **INT64}
    assert props["Due"]["format"] == "date"
    assert props["TotalValue"] == {"type": ["string", "null"]}, "undeclared numbers stay text"


def test_discovery_of_a_huge_view_reads_only_the_sample():
    with Simulator(password=PASSWORD, synthetic=1_000_000) as big:
        cfg = config(big, discovery_sample_size=50)
        started = time.monotonic()
        discover(cfg)
        elapsed = time.monotonic() - started
        time.sleep(0.2)  # let the server notice the closed connection
        requests = big.view_requests("leads")
    assert len(requests) == 1
    assert requests[0]["cursor"] is None
    # The server streams into the socket until the client hangs up: what it managed to send
    # is bounded by socket buffers, a tiny fraction of the million records.
    assert requests[0]["records_sent"] < 10_000
    assert elapsed < 5
