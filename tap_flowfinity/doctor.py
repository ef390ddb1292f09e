"""The view doctor: `tap-flowfinity --test` checks each view against the synchronization recipe.

Flowfinity's recipe (docs/contract.md) asks the app designer for a dedicated view: Record ID,
Last submission ID and the State among its fields, sorted by Last submission ID ascending,
filtered by a "Previous Last Submission ID" parameter, deletes as a "Deleted" state. A view
that misses one of these syncs wrongly or not at all, and the designer is rarely the person
who runs the tap. The doctor says which part is missing, one line per check, with the fix.

It reads a bounded sample (`DOCTOR_SAMPLE_SIZE` records, then the connection is closed) plus
the start of one filtered request; it never reads a whole view and never retries, so a
broken setup is reported in seconds.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
import typing as t
from dataclasses import dataclass
from http import HTTPStatus

import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_flowfinity.client import FIX_SORT, ViewClient, state_name
from tap_flowfinity.cursor import parse_cursor
from tap_flowfinity.errors import (
    AccessDenied,
    AuthSchemeNotSupported,
    CredentialsRejected,
    FlowfinityError,
    MethodNotAllowed,
    TruncatedResponse,
    ViewNotFound,
)
from tap_flowfinity.retries import network_problem, tls_error
from tap_flowfinity.schema import infer_schema
from tap_flowfinity.security import plain_http_warnings, redact
from tap_flowfinity.settings import TapSettings, ViewSettings

DOCTOR_SAMPLE_SIZE = 200
FILTER_PROBE_SIZE = 20

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"

CHECKS = (
    "reachable",
    "credentials accepted",
    "JSON array",
    "fields",
    "cursors ascend",
    "cursor parameter filters",
    "deleted state",
)

LOGGER = logging.getLogger("tap-flowfinity")


@dataclass(frozen=True)
class Check:
    """The outcome of one check of one view."""

    view: str
    name: str
    status: str
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        """Whether this check makes the doctor fail."""
        return self.status == FAIL

    def line(self) -> str:
        """One line: status, view, check, what was seen, and the fix when it failed."""
        text = f"{self.status} view {self.view!r}: {self.name}: {self.detail}"
        if self.fix:
            text += f" - fix: {self.fix}"
        return redact(text)


class _Stop(Exception):
    """The remaining checks of a view cannot run: its reason is already recorded."""


class ViewDoctor:
    """Runs the checks of one view and keeps the sample it read (for the test RECORD)."""

    def __init__(
        self,
        settings: TapSettings,
        view: ViewSettings,
        sample_size: int = DOCTOR_SAMPLE_SIZE,
        logger: logging.Logger = LOGGER,
    ) -> None:
        self.view = view
        self.sample_size = sample_size
        self.client = ViewClient.for_settings(settings, view, logger)
        self.username = settings.username
        self.checks: list[Check] = []
        self.sample: list[dict[str, t.Any]] = []

    # Running

    def run(self) -> list[Check]:
        """Every check, in recipe order; the ones that cannot run are reported as SKIP."""
        try:
            self._run()
        except _Stop:
            pass
        finally:
            self.client.close()
        done = {check.name for check in self.checks}
        reason = next((c.name for c in self.checks if c.failed), "an earlier check")
        for name in CHECKS:
            if name not in done:
                self._add(name, SKIP, f"not checked ({reason} failed)")
        order = {name: index for index, name in enumerate(CHECKS)}
        self.checks.sort(key=lambda check: order[check.name])
        return self.checks

    def _run(self) -> None:
        response = self._get(None)
        self._check_status(response)
        self.sample = self._read_sample(response, self.sample_size, "JSON array")
        cursors = self._check_fields()
        self._check_ascending(cursors)
        self._check_filter(max(cursors))
        self._check_deleted_state()

    def _add(self, name: str, status: str, detail: str, fix: str = "") -> None:
        self.checks.append(Check(self.view.name, name, status, detail, fix))

    def _fail(self, name: str, detail: str, fix: str = "") -> t.NoReturn:
        self._add(name, FAIL, detail, fix)
        raise _Stop

    # Requests

    def _get(self, cursor: int | None) -> requests.Response:
        where = self.client.where
        started = time.monotonic()
        try:
            response = self.client.request(cursor)
        except requests.exceptions.RequestException as exc:
            tls = tls_error(self.view.name, exc)
            if tls is not None:
                self._fail("reachable", f"{where}: {tls.problem}", tls.fix)
            self._fail(
                "reachable",
                f"{where}: {network_problem(exc) or type(exc).__name__}",
                "check the host and port in views[].url, and that this machine can reach "
                "Flowfinity (DNS, firewall, proxy)",
            )
        self.elapsed = time.monotonic() - started
        return response

    def _check_status(self, response: requests.Response) -> None:
        """Map the status to the check it fails, with the client's own reason and fix."""
        status = response.status_code
        error = self.client.status_error(response)
        if error is not None:
            response.close()
        if isinstance(error, RetriableAPIError):
            self._fail(
                "reachable",
                f"HTTP {status} from {self.client.where}: Flowfinity reports a server error",
                "try again later; if it persists, check views[].url and views[].params",
            )
        if isinstance(error, (ViewNotFound, MethodNotAllowed)):
            self._fail("reachable", error.problem, error.fix)
        self._add(
            "reachable", PASS, f"HTTP {status} from {self.client.where} in {self.elapsed:.2f}s"
        )
        if isinstance(error, (CredentialsRejected, AuthSchemeNotSupported, AccessDenied)):
            self._fail("credentials accepted", error.problem, error.fix)
        self._add("credentials accepted", PASS, f"HTTP {status} as user {self.username!r}")
        if isinstance(error, FlowfinityError):
            self._fail("JSON array", error.problem, error.fix)

    def _read_sample(
        self, response: requests.Response, limit: int, check: str
    ) -> list[dict[str, t.Any]]:
        records = self.client.raw_records(response)
        try:
            sample = list(itertools.islice(records, limit))
        except FlowfinityError as exc:
            self._fail(check, exc.problem, exc.fix)
        except TruncatedResponse as exc:
            self._fail(
                check,
                str(exc).split(": ", 1)[-1],
                "a network or proxy problem cut the response: run the doctor again; "
                "syncs retry this",
            )
        finally:
            records.close()
        if check == "JSON array":
            more = "the first" if len(sample) == limit else "all"
            self._add(check, PASS, f"a JSON array; read {more} {len(sample)} records")
        return sample

    # Record checks

    def _check_fields(self) -> list[int]:
        view = self.view
        if not self.sample:
            self._add(
                "fields",
                WARN,
                "the view returned no records, so its fields, order and filter cannot be checked",
                "create or update one record in the app, then run the doctor again",
            )
            raise _Stop
        cursors = []
        for sampled in self.sample:
            record = dict(sampled)
            self.client.adopt_keys(record)
            missing = [
                name
                for name in ("RecordID", view.cursor_field, view.state_field)
                if name not in record
            ]
            if missing:
                self._fail(
                    "fields",
                    f"record {record.get('RecordID', '?')} has no "
                    f"{', '.join(repr(m) for m in missing)}; its keys: {_keys(record)}",
                    self._missing_fix(missing),
                )
            try:
                cursors.append(parse_cursor(record, view))
            except FlowfinityError as exc:
                self._fail("fields", exc.problem, exc.fix)
            sampled.clear()
            sampled.update(record)  # as the stream reads it: configured names, int cursor
        renamed = self.client.renamed_keys()
        note = "".join(f"; {name} arrives as {key!r}" for name, key in renamed.items())
        self._add(
            "fields",
            PASS,
            f"every record carries RecordID, {view.cursor_field} (numeric) and "
            f"{view.state_field}{note}",
        )
        return cursors

    def _missing_fix(self, missing: list[str]) -> str:
        view = self.view
        fixes = []
        if "RecordID" in missing:
            fixes.append("add the system field Record ID to the view")
        if view.cursor_field in missing:
            fixes.append(
                "add the system field Last submission ID to the view (or set cursor_field "
                "to the key that holds it)"
            )
        if view.state_field in missing:
            fixes.append(
                "add the workflow State to the view (or set state_field to the key that holds it)"
            )
        return "; ".join(fixes)

    def _check_ascending(self, cursors: list[int]) -> None:
        name = self.view.cursor_field
        equal = 0
        for index, (previous, value) in enumerate(itertools.pairwise(cursors), start=1):
            error = self.client.order_error(value, previous, None)
            if error is not None:
                record_id = self.sample[index].get("RecordID", "?")
                self._fail(
                    "cursors ascend",
                    f"record {record_id} has {name} {value} after {previous}: the view is "
                    "not sorted by it ascending",
                    FIX_SORT,
                )
            equal += value == previous
        shared = f" ({equal} records share the id before them)" if equal else ""
        self._add("cursors ascend", PASS, f"{name} ascends over {len(cursors)} records{shared}")

    def _check_filter(self, largest: int) -> None:
        check = "cursor parameter filters"
        parameter = self.view.cursor_parameter
        response = self._get(largest)
        if response.status_code >= HTTPStatus.BAD_REQUEST:
            response.close()
            self._fail(
                check,
                f"asking with {parameter}={largest} got HTTP {response.status_code}",
                "make the view parameter Numeric, and check cursor_parameter",
            )
        probe = self._read_sample(response, FILTER_PROBE_SIZE, check)
        for record in probe:
            try:
                value = self.client.cursor_of(dict(record))
            except FlowfinityError as exc:
                self._fail(check, exc.problem, exc.fix)
            if value <= largest:
                self._fail(
                    check,
                    f"asked for records after {parameter}={largest}, the view returned "
                    f"{self.view.cursor_field} {value}",
                    f"filter the view by 'Last submission ID is greater than Previous Last "
                    f"Submission ID' OR 'Previous Last Submission ID does not contain data', "
                    f"and check that the parameter's generated name is {parameter!r} "
                    "(cursor_parameter)",
                )
        newer = f" ({len(probe)} newer records)" if probe else ""
        self._add(
            check,
            PASS,
            f"asked with {parameter}={largest}: nothing at or below it came back{newer}",
        )

    def _check_deleted_state(self) -> None:
        check = "deleted state"
        configured = sorted(self.view.deleted_states)
        seen: dict[str, int] = {}
        for record in self.sample:
            state = state_name(record.get(self.view.state_field))
            if state is not None:
                seen[state] = seen.get(state, 0) + 1
        found = [name for name in configured if name in seen]
        if not configured:
            self._add(
                check,
                WARN,
                "deleted_states is empty: deleted records will not be flagged",
                "set deleted_states to the state your app uses for deletes (e.g. Deleted)",
            )
        elif found:
            count = sum(seen[name] for name in found)
            self._add(
                check,
                PASS,
                f"{', '.join(found)} seen on {count} of {len(self.sample)} sampled records",
            )
        else:
            states = ", ".join(sorted(seen)) or "none"
            self._add(
                check,
                PASS,
                f"{', '.join(configured)} configured, not among the sampled states "
                f"({states}); fine until a record is deleted",
            )


def _keys(record: t.Mapping[str, t.Any], limit: int = 12) -> str:
    """The record's keys, for a user looking for the one a setting should name."""
    keys = ", ".join(repr(key) for key in list(record)[:limit])
    return keys + (f" and {len(record) - limit} more" if len(record) > limit else "")


@dataclass(frozen=True)
class DoctorReport:
    """The verdict, and each sampled view's records for the test RECORDs a pass writes."""

    passed: bool
    samples: tuple[tuple[ViewSettings, list[dict[str, t.Any]]], ...] = ()

    def catalog(self) -> dict[str, t.Any]:
        """The sampled views as discovery would write them, schemas inferred from the samples.

        A tap given this catalog reads no view again to set up its streams.
        """
        return {
            "streams": [
                _catalog_entry(view, infer_schema(view, records)) for view, records in self.samples
            ]
        }


def run_doctor(
    settings: TapSettings,
    views: t.Sequence[ViewSettings],
    *,
    notes: t.Sequence[str] = (),
    logger: logging.Logger = LOGGER,
    out: t.TextIO = sys.stderr,
) -> DoctorReport:
    """Check every view, print one line per check and a verdict.

    `notes` are warnings about the settings themselves (an unknown key), printed first as
    WARN lines: the doctor is where a user checks a new configuration. The tap writes the
    report's samples as the test RECORDs (the doctor knows views, not Singer streams).
    """
    checks: list[Check] = []
    doctors = []
    for warning in [*notes, *plain_http_warnings(views)]:
        print(f"WARN {warning}", file=out, flush=True)
    for view in views:
        doctor = ViewDoctor(settings, view, logger=logger)
        url_warning = doctor.client.url_warning()
        if url_warning:
            print(f"WARN {url_warning}", file=out, flush=True)
        for check in doctor.run():
            checks.append(check)
            print(check.line(), file=out, flush=True)
        doctors.append(doctor)
    failed = [check for check in checks if check.failed]
    warned = [check for check in checks if check.status == WARN]
    if failed:
        names = "; ".join(f"view {c.view!r}: {c.name}" for c in failed)
        print(
            f"tap-flowfinity: view doctor: {len(failed)} of {len(checks)} checks failed "
            f"({names}); see the FAIL lines above for the fix",
            file=out,
            flush=True,
        )
        return DoctorReport(passed=False)
    note = f", {len(warned)} warnings" if warned else ""
    print(
        f"tap-flowfinity: view doctor: all {len(checks)} checks of {len(views)} "
        f"view{'s' if len(views) != 1 else ''} passed{note}",
        file=out,
        flush=True,
    )
    samples = tuple((doctor.view, doctor.sample) for doctor in doctors if doctor.sample)
    return DoctorReport(passed=True, samples=samples)


def _catalog_entry(view: ViewSettings, schema: dict[str, t.Any]) -> dict[str, t.Any]:
    """A selected catalog entry for the view, as discovery would write it."""
    return {
        "tap_stream_id": view.name,
        "stream": view.name,
        "schema": schema,
        "key_properties": ["RecordID"],
        "replication_key": view.cursor_field,
        "replication_method": "INCREMENTAL",
        "metadata": [
            {
                "breadcrumb": [],
                "metadata": {
                    "selected": True,
                    "inclusion": "available",
                    "table-key-properties": ["RecordID"],
                    "valid-replication-keys": [view.cursor_field],
                },
            }
        ],
    }
