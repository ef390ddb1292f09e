"""A view that answers wrongly stops the tap loudly, with no bookmark beyond what was written.

Each case runs the real CLI (`tap-flowfinity --config --catalog --state`) against the
simulator over HTTP, with the fault on the sync request itself, and checks: exit status
non-zero, exactly one `tap-flowfinity: error:` line on stderr naming the view and saying what
to fix, no traceback, never the password; the records before the bad one emitted once; and
no STATE ahead of the records written (the last one not beyond the starting bookmark or the
last record emitted). A wrong password, without a catalog, fails discovery the same way.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from flowfinity_simulator import Fault, Simulator
from tap_flowfinity.tap import TapFlowfinity
from tests.e2e.singer_checks import (
    STREAM,
    assert_exactly_once,
    assert_never_ahead,
    emitted,
    error_lines,
    run_cli,
    state_of,
    states,
)
from tests.harness.meltano import TAP

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

PASSWORD = "Malformed-Case-S3cret"


@pytest.fixture
def sim():
    with Simulator(password=PASSWORD, demo_records=20) as server:
        yield server


def config(sim, **extra):
    return {
        "username": "integration",
        "password": PASSWORD,
        "views": [{"name": STREAM, "url": sim.view_url("leads")}],
        "lookback": 0,
        "state_message_frequency": 1,
        "max_retries": 1,
        "max_retry_seconds": 5,
        **extra,
    }


@pytest.fixture
def catalog(sim):
    """Discovered once, so the CLI's only request is the sync request the fault hits."""
    cat = TapFlowfinity(config=config(sim)).catalog_dict
    sim.clear_request_log()
    return cat


def ordered(sim):
    return sorted(sim.truth("leads").values(), key=lambda r: int(r["lastSubmissionId"]))


def assert_loud_failure(rc, stderr, messages, *, says):
    assert rc != 0, "a malformed response must fail the run"
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr[-2000:]
    assert "view 'leads'" in lines[0]
    for words in says:
        assert words in lines[0], lines[0]
    assert "Traceback" not in stderr
    assert PASSWORD not in stderr + json.dumps(messages)


WHOLE_BODY_CASES = {
    "html_page_with_200": (
        Fault(
            "status",
            status=200,
            headers={"Content-Type": "text/html"},
            body="<html><body><form>Sign in to Flowfinity</form></body></html>",
        ),
        ["HTML page", "views[].url"],
    ),
    "json_object": (
        Fault("body", body='{"error": "Query() is not enabled for this user"}'),
        ["JSON object, not the array"],
    ),
    "json_string_not_array": (Fault("body", body='"no records"'), ["not a JSON array"]),
    "array_of_non_records": (Fault("body", body="[1, 2, 3]"), ["not a record object"]),
    "invalid_json": (Fault("body", body='[{"RecordID": "000000001",, }]'), ["not valid JSON"]),
}


@pytest.mark.parametrize("case", sorted(WHOLE_BODY_CASES))
def test_whole_body_malformed_fails_with_no_bookmark_beyond_the_start(sim, catalog, tmp_path, case):
    fault, says = WHOLE_BODY_CASES[case]
    start = int(ordered(sim)[4]["lastSubmissionId"])
    sim.faults.add(fault)
    rc, messages, stderr = run_cli(tmp_path, config(sim), catalog=catalog, state=state_of(start))
    assert_loud_failure(rc, stderr, messages, says=says)
    assert emitted(messages) == []
    assert all(b is None or b <= start for b in states(messages)), states(messages)
    assert len(sim.view_requests("leads")) == 1, "a malformed body is not retried"


BAD_RECORDS = {
    "record_without_cursor": ({"RecordID": "000999001", "State": "Open"}, "no 'lastSubmissionId'"),
    "non_numeric_cursor": (
        {"RecordID": "000999002", "State": "Open", "lastSubmissionId": "18734abc"},
        "non-numeric 'lastSubmissionId'",
    ),
    "fractional_cursor": (
        {"RecordID": "000999003", "State": "Open", "lastSubmissionId": 18799999.5},
        "non-numeric 'lastSubmissionId'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_cursor_mid_body_keeps_the_records_before_it_and_no_bookmark_beyond(
    sim, catalog, tmp_path, case
):
    bad, says = BAD_RECORDS[case]
    rows = ordered(sim)
    start = int(rows[4]["lastSubmissionId"])
    good = rows[5:9]
    body = "[" + ",".join(json.dumps(r) for r in [*good, bad]) + "]"
    sim.faults.add(Fault("body", body=body))
    rc, messages, stderr = run_cli(tmp_path, config(sim), catalog=catalog, state=state_of(start))
    assert_loud_failure(rc, stderr, messages, says=[says, bad["RecordID"]])
    expected = {(r["RecordID"], int(r["lastSubmissionId"])) for r in good}
    assert_exactly_once(messages, expected)
    assert max(b for b in states(messages) if b is not None) <= int(good[-1]["lastSubmissionId"])


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (401, ["HTTP 401", "check username and password"]),
        (403, ["HTTP 403", "Query() access"]),
        (404, ["HTTP 404", "App Editor"]),
    ],
)
def test_auth_and_missing_view_fail_fast_in_one_line_without_the_password(
    sim, catalog, tmp_path, status, says
):
    sim.faults.add(Fault("status", status=status, body=f"denied {PASSWORD}", times=None))
    rc, messages, stderr = run_cli(tmp_path, config(sim, max_retries=5), catalog=catalog)
    assert_loud_failure(rc, stderr, messages, says=says)
    assert len(sim.view_requests("leads")) == 1, "401/403/404 are not retried"
    assert emitted(messages) == []


def test_unsorted_view_fails_loudly_and_the_final_state_is_the_starting_bookmark(
    sim, catalog, tmp_path
):
    rows = ordered(sim)
    start = int(rows[2]["lastSubmissionId"])
    sim.faults.add(Fault("unsorted", times=None))
    rc, messages, stderr = run_cli(tmp_path, config(sim), catalog=catalog, state=state_of(start))
    assert_loud_failure(
        rc, stderr, messages, says=["not sorted", "sort the view by Last submission ID, ascending"]
    )
    assert states(messages)[-1] == start, "the last STATE takes back what the run advanced"
    assert all(sid > start for _, sid in emitted(messages))


def test_a_view_that_ignores_the_cursor_fails_loudly_and_emits_nothing(sim, catalog, tmp_path):
    rows = ordered(sim)
    start = int(rows[5]["lastSubmissionId"])
    sim.faults.add(Fault("ignore_cursor", times=None))
    rc, messages, stderr = run_cli(tmp_path, config(sim), catalog=catalog, state=state_of(start))
    assert_loud_failure(rc, stderr, messages, says=["greater than Previous Last Submission ID"])
    assert emitted(messages) == []
    assert all(b is None or b <= start for b in states(messages))
    assert_never_ahead(messages, set())


def test_wrong_password_is_one_line_naming_the_view(simulator, tmp_path):
    """Without a catalog the first request is discovery's sample: it fails the same way."""
    config_file = tmp_path / "config.json"
    secret = "Wr0ng-Pa55-for-test"
    config_file.write_text(
        json.dumps(
            {
                "username": "integration",
                "password": secret,
                "views": [{"name": "leads", "url": simulator.view_url("leads")}],
            }
        )
    )
    result = subprocess.run([TAP, "--config", str(config_file)], capture_output=True, text=True)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert "view 'leads'" in errors[0] and "HTTP 401" in errors[0]
    assert secret not in result.stderr + result.stdout
