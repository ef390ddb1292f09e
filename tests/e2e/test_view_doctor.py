"""The view doctor (`tap-flowfinity --test`) against the simulator: a correct view, and each
broken setup the simulator can serve, each with its FAIL line and fix."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import typing as t

import pytest

from flowfinity_simulator.faults import Fault
from tests.harness.meltano import DEV_PASSWORD, DEV_USERNAME, TAP, run_meltano

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

CHECKS = [
    "reachable",
    "credentials accepted",
    "JSON array",
    "fields",
    "cursors ascend",
    "cursor parameter filters",
    "deleted state",
]


def doctor(tmp_path, views, **settings) -> subprocess.CompletedProcess[str]:
    config = {"username": DEV_USERNAME, "password": DEV_PASSWORD, "views": views, **settings}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [TAP, "--config", str(path), "--test"], capture_output=True, text=True, timeout=60
    )


def check_lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The doctor's lines by check name (one view)."""
    lines = {}
    for line in result.stderr.splitlines():
        for name in CHECKS:
            if line.split(": ")[1:2] == [name]:
                lines[name] = line
    return lines


def leads(simulator, url: str | None = None) -> list[dict[str, t.Any]]:
    return [{"name": "leads", "url": url or simulator.view_url("leads")}]


def assert_fails(result, check: str, *words: str) -> str:
    lines = check_lines(result)
    assert result.returncode == 1, result.stderr
    assert lines[check].startswith("FAIL view 'leads': "), lines
    assert " - fix: " in lines[check], lines[check]
    for word in words:
        assert word in lines[check], lines[check]
    failed = [name for name, line in lines.items() if line.startswith("FAIL")]
    assert failed == [check], failed
    assert "view doctor: 1 of 7 checks failed" in result.stderr.splitlines()[-1]
    assert "RECORD" not in result.stdout
    return lines[check]


def test_correct_view_passes_every_check_and_emits_a_record(simulator, tmp_path):
    simulator.delete("leads", next(iter(simulator.truth("leads"))))
    visits = {"name": "visits", "url": simulator.view_url("visits")}
    result = doctor(tmp_path, [*leads(simulator), visits])
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line[:4] in {"PASS", "FAIL", "WARN"}]
    assert len(lines) == 14 and all(line.startswith("PASS") for line in lines), lines
    assert "Deleted seen on 1 of" in check_lines(result)["deleted state"] or any(
        "Deleted seen on 1 of" in line for line in lines
    )
    assert "all 14 checks of 2 views passed" in result.stderr
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    records = [m for m in messages if m["type"] == "RECORD"]
    assert {m["stream"] for m in records} == {"leads", "visits"}
    assert isinstance(records[0]["record"]["lastSubmissionId"], int)
    # Bounded: one sample request and one filter probe per view, nothing else.
    assert [r["cursor"] is None for r in simulator.view_requests("leads")] == [True, False]


def test_unsorted_view(simulator, tmp_path):
    simulator.faults.add(Fault(kind="unsorted", order="swap_last", times=None))
    line = assert_fails(doctor(tmp_path, leads(simulator)), "cursors ascend", "not sorted")
    assert "sort the view by Last submission ID, ascending" in line


def test_view_without_the_parameter_filter(simulator, tmp_path):
    simulator.faults.add(Fault(kind="ignore_cursor", times=None))
    line = assert_fails(
        doctor(tmp_path, leads(simulator)), "cursor parameter filters", "PreviousLastSubmissionId="
    )
    assert "is greater than Previous Last Submission ID" in line


def test_wrong_cursor_parameter_name(simulator, tmp_path):
    result = doctor(tmp_path, leads(simulator), cursor_parameter="PrevId")
    assert_fails(result, "cursor parameter filters", "'PrevId' (cursor_parameter)")


def test_wrong_password(simulator, tmp_path):
    config_password = "Wrong-doctor-pass"
    config = {"username": DEV_USERNAME, "password": config_password, "views": leads(simulator)}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [TAP, "--config", str(path), "--test"], capture_output=True, text=True, timeout=60
    )
    assert_fails(result, "credentials accepted", "HTTP 401", "Integration")
    assert config_password not in result.stdout + result.stderr
    assert check_lines(result)["reachable"].startswith("PASS")


def test_wrong_url_path(simulator, tmp_path):
    url = simulator.base_url + "/Flowfinity/api/rest/v1/LeadRegistration/views/NoSuchView"
    assert_fails(doctor(tmp_path, leads(simulator, url)), "reachable", "HTTP 404", "App Editor")


def test_wrong_host(tmp_path):
    views = [{"name": "leads", "url": "http://127.0.0.1:9/Flowfinity/views/LeadsSync"}]
    assert_fails(doctor(tmp_path, views), "reachable", "connection refused", "host and port")


def test_html_page_with_200(simulator, tmp_path):
    simulator.faults.add(
        Fault(
            kind="status",
            status=200,
            headers={"Content-Type": "text/html"},
            body="<html><body>Sign in</body></html>",
            times=None,
        )
    )
    assert_fails(doctor(tmp_path, leads(simulator)), "JSON array", "HTML page")


def test_missing_state_field(simulator, tmp_path):
    result = doctor(tmp_path, leads(simulator), state_field="Status")
    assert_fails(result, "fields", "'Status'", "state_field")


def test_empty_deleted_states_is_a_warning_not_a_failure(simulator, tmp_path):
    result = doctor(tmp_path, leads(simulator), deleted_states=[])
    assert result.returncode == 0, result.stderr
    assert check_lines(result)["deleted state"].startswith("WARN")


def test_misspelled_settings_are_named_before_the_checks(simulator, tmp_path):
    views = [{**leads(simulator)[0], "cursor_feild": "lastSubmissionId"}]
    result = doctor(tmp_path, views, lookbak=5000)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARN")]
    assert warnings == [
        "WARN Unknown setting 'lookbak' (did you mean 'lookback'?): it is ignored",
        "WARN Unknown setting 'cursor_feild' in view 'leads' (did you mean 'cursor_field'?): "
        "it is ignored",
    ]
    assert "all 7 checks of 1 view passed" in result.stderr


def test_https_to_a_plain_http_port(simulator, tmp_path):
    url = simulator.view_url("leads").replace("http://", "https://")
    assert_fails(doctor(tmp_path, leads(simulator, url)), "reachable", "TLS", "scheme and port")


@pytest.fixture
def tls_simulator(simulator, tmp_path):
    """The simulator behind TLS with a self-signed certificate for 127.0.0.1."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = simulator._server
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return simulator, cert


def test_tls_verified_by_default_and_ca_bundle_trusts_a_private_ca(tls_simulator, tmp_path):
    simulator, cert = tls_simulator
    url = simulator.view_url("leads").replace("http://", "https://")
    line = assert_fails(doctor(tmp_path, leads(simulator, url)), "reachable", "certificate")
    assert "ca_bundle" in line
    trusted = doctor(tmp_path, leads(simulator, url), ca_bundle=str(cert))
    assert trusted.returncode == 0, trusted.stderr


def test_plain_http_to_a_remote_host_is_warned(tmp_path):
    views = [{"name": "leads", "url": "http://flowfinity.invalid/views/LeadsSync"}]
    result = doctor(tmp_path, views, request_timeout=2)
    assert "WARN view 'leads': the url is plain http://" in result.stderr
    assert result.returncode == 1


def test_bounded_sample_on_a_large_view(tmp_path):
    from flowfinity_simulator import Simulator

    with Simulator(username=DEV_USERNAME, password=DEV_PASSWORD, synthetic=50_000) as sim:
        result = doctor(tmp_path, leads(sim))
        assert result.returncode == 0, result.stderr
        assert "read the first 200 records" in check_lines(result)["JSON array"]
        assert sim.records_sent("leads") < 50_000


def test_meltano_test_runs_the_doctor(meltano_env, simulator):
    ok = run_meltano(["test", "tap-flowfinity"], env=meltano_env, check=False, timeout=180)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "PASS view 'leads': cursor parameter filters" in ok.stdout + ok.stderr
    # (Meltano discovers before a plugin command; a view without the filter discovers fine.)
    simulator.faults.add(Fault(kind="ignore_cursor", times=None))
    bad = run_meltano(["test", "tap-flowfinity"], env=meltano_env, check=False, timeout=180)
    assert bad.returncode != 0
    assert "FAIL view 'leads': cursor parameter filters" in bad.stdout + bad.stderr


def test_meltano_invoke_test_runs_the_doctor_without_discovering(meltano_env, simulator):
    simulator.faults.add(Fault(kind="unsorted", times=None))
    result = run_meltano(
        ["invoke", "tap-flowfinity", "--test"], env=meltano_env, check=False, timeout=180
    )
    assert result.returncode != 0
    assert "FAIL view 'leads': cursors ascend" in result.stderr


def test_meltano_config_test(meltano_env):
    """`meltano config test` runs a sync until the first RECORD: it passes on a good setup."""
    result = run_meltano(["config", "test", "tap-flowfinity"], env=meltano_env, timeout=180)
    assert "Plugin configuration is valid" in result.stdout


def test_a_real_sites_variants_pass_with_what_was_seen(tmp_path):
    from flowfinity_simulator import Simulator
    from flowfinity_simulator.variants import Variants

    variants = Variants(
        cursor_key="lastSubmissionID", records_per_submission=2, bom=True, empty_answer="null"
    )
    with Simulator(username=DEV_USERNAME, password=DEV_PASSWORD, variants=variants) as sim:
        result = doctor(tmp_path, leads(sim, sim.view_url("leads") + "?PreviousLastSubmissionId=0"))
    assert result.returncode == 0, result.stderr
    lines = check_lines(result)
    assert "lastSubmissionId arrives as 'lastSubmissionID'" in lines["fields"]
    assert "share the id before them" in lines["cursors ascend"]
    assert "WARN view 'leads': views[].url already carries PreviousLastSubmissionId" in (
        result.stderr
    )


def test_a_missing_field_lists_the_keys_seen(simulator, tmp_path):
    result = doctor(tmp_path, leads(simulator), cursor_field="SubmissionNo")
    line = assert_fails(result, "fields", "'SubmissionNo'", "cursor_field", "its keys:")
    assert "'lastSubmissionId'" in line or "more" in line


def test_a_site_asking_for_ntlm_is_named(tmp_path):
    from flowfinity_simulator import Simulator
    from flowfinity_simulator.variants import Variants

    with Simulator(
        username=DEV_USERNAME, password=DEV_PASSWORD, variants=Variants(auth_scheme="NTLM")
    ) as sim:
        result = doctor(tmp_path, leads(sim))
    assert_fails(result, "credentials accepted", "NTLM authentication", "Basic")


def test_the_test_record_goes_through_the_stream_maps(simulator, tmp_path):
    maps = {"leads": {"EmailAddress": None, "Company": "Company.upper()"}}
    result = doctor(tmp_path, leads(simulator), stream_maps=maps)
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    schema = next(m for m in messages if m["type"] == "SCHEMA")
    record = next(m for m in messages if m["type"] == "RECORD")["record"]
    assert "EmailAddress" not in schema["schema"]["properties"]
    assert "EmailAddress" not in record
    assert record["Company"] == record["Company"].upper()
    assert record["_sdc_deleted_at"] is None and isinstance(record["lastSubmissionId"], int)
