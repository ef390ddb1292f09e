"""Tap settings: the config JSON schema and the per-view settings resolved from it.

CONTRACT.md fixes the names. Every per-view setting falls back to the tap-wide one, so a
project with many views states the common choices once and overrides them where a view
differs.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from tap_flowfinity.fieldtypes import DECLARABLE_KINDS, KEEP_RAW, ON_TYPE_ERROR_CHOICES

DEFAULT_CURSOR_FIELD = "lastSubmissionId"
DEFAULT_CURSOR_PARAMETER = "PreviousLastSubmissionId"
DEFAULT_STATE_FIELD = "State"
DEFAULT_DELETED_STATES = ("Deleted",)
# Flowfinity assigns a submission id when a submission starts; one that commits slowly becomes
# visible after larger ids were already read. Re-reading the last 1,000 ids of the system-wide
# counter covers every submission that was in flight while the previous run read, up to a site
# taking ~100 submissions per second with a 10-second commit; the cost is re-reading this view's
# share of those ids (usually a handful of records), upserted harmlessly by RecordID.
DEFAULT_LOOKBACK = 1000
DEFAULT_STATE_MESSAGE_FREQUENCY = 1000
DEFAULT_DISCOVERY_SAMPLE_SIZE = 200
DEFAULT_REQUEST_TIMEOUT = 300
DEFAULT_MAX_RETRIES = 8
DEFAULT_MAX_RETRY_SECONDS = 600
DEFAULT_PROGRESS_INTERVAL = 30

VIEW_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Settings a view can override: (name, type, title, description, tap-wide default).
_OVERRIDABLE: tuple[tuple[str, t.Any, str, str, t.Any], ...] = (
    (
        "cursor_field",
        th.StringType,
        "Cursor field",
        "Record field holding the submission id.",
        DEFAULT_CURSOR_FIELD,
    ),
    (
        "cursor_parameter",
        th.StringType,
        "Cursor parameter",
        "View parameter that receives the last processed submission id.",
        DEFAULT_CURSOR_PARAMETER,
    ),
    (
        "state_field",
        th.StringType,
        "State field",
        "Record field holding the workflow state name.",
        DEFAULT_STATE_FIELD,
    ),
    (
        "deleted_states",
        th.ArrayType(th.StringType),
        "Deleted states",
        'Workflow state names that mean "deleted".',
        list(DEFAULT_DELETED_STATES),
    ),
    (
        "deleted_at_field",
        th.StringType,
        "Deleted-at field",
        "Record field to take `_sdc_deleted_at` from (a date-time). When unset, "
        "`_sdc_deleted_at` is the UTC time the record was read in a deleted state.",
        None,
    ),
    (
        "flatten_selections",
        th.BooleanType,
        "Flatten selections",
        'Choice fields as text: {"Selection": "x"} becomes x and a multiple choice an '
        'array of text. False keeps the {"Selection": ...} objects as JSON.',
        True,
    ),
    (
        "timezone",
        th.StringType,
        "Time zone",
        "IANA time zone (e.g. America/Vancouver) of the site's zone-less date-times: "
        "date-time fields are converted from it to UTC. Unset: kept as sent.",
        None,
    ),
    (
        "on_type_error",
        th.StringType(allowed_values=list(ON_TYPE_ERROR_CHOICES)),
        "On type error",
        "A value that does not fit its field's type: keep_raw sets the column to null and "
        "keeps the value as sent in <field>__raw; fail stops the run naming the record.",
        KEEP_RAW,
    ),
)


def _overridable_settings(*, per_view: bool) -> list[th.Property]:
    """The tap-wide declaration (with its default) or the per-view one (falls back to it)."""
    suffix = " Falls back to the tap-wide setting." if per_view else " Override per view."
    return [
        th.Property(
            name,
            kind,
            default=None if per_view else default,
            title=title,
            description=description + suffix,
        )
        for name, kind, title, description, default in _OVERRIDABLE
    ]


CONFIG_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "username",
        th.StringType,
        required=True,
        title="Username",
        description="Flowfinity Integration user (HTTP Basic auth).",
    ),
    th.Property(
        "password",
        th.StringType,
        required=True,
        secret=True,
        title="Password",
        description="Password of the Integration user. Never printed, logged or echoed.",
    ),
    th.Property(
        "views",
        th.ArrayType(
            th.ObjectType(
                th.Property(
                    "name",
                    th.StringType(pattern=VIEW_NAME_PATTERN),
                    required=True,
                    description=(
                        "Stream (and target table) name: letters, digits and _, "
                        "not starting with a digit."
                    ),
                ),
                th.Property(
                    "url",
                    th.StringType(pattern=r"^https?://"),
                    required=True,
                    description=(
                        "Full REST URL of the synchronization view, as the App Editor "
                        "shows it (Configure > Integration > REST Integration > Details)."
                    ),
                ),
                th.Property(
                    "params",
                    th.ObjectType(additional_properties=True),
                    description="Extra static view parameters, sent as URL name=value pairs.",
                ),
                th.Property(
                    "field_types",
                    th.ObjectType(
                        additional_properties=th.StringType(allowed_values=list(DECLARABLE_KINDS))
                    ),
                    description=(
                        "Column types by field name, converted from the text Flowfinity sends: "
                        + ", ".join(DECLARABLE_KINDS)
                        + ". Undeclared fields are text (choices: text or array of text)."
                    ),
                ),
                th.Property(
                    "schema",
                    th.ObjectType(additional_properties=True),
                    description=(
                        "JSON schema properties that override the discovered type of "
                        "this view's fields, by field name."
                    ),
                ),
                *_overridable_settings(per_view=True),
            ),
        ),
        required=True,
        title="Views",
        description="The synchronization views to sync: one Singer stream per item.",
    ),
    *_overridable_settings(per_view=False),
    th.Property(
        "start_last_submission_id",
        th.IntegerType,
        title="Start after submission id",
        description=(
            "Where a stream with no bookmark starts: only records with a larger "
            "lastSubmissionId are read. Unset: the whole history."
        ),
    ),
    th.Property(
        "lookback",
        th.IntegerType(minimum=0),
        default=DEFAULT_LOOKBACK,
        title="Lookback (submission ids)",
        description=(
            "How many submission ids below the bookmark each run re-reads, so that a "
            "submission that became visible late is not skipped. 0 disables the overlap."
        ),
    ),
    th.Property(
        "state_message_frequency",
        th.IntegerType(minimum=1),
        default=DEFAULT_STATE_MESSAGE_FREQUENCY,
        title="STATE message frequency",
        description="Emit a STATE message at least every this many records.",
    ),
    th.Property(
        "discovery_sample_size",
        th.IntegerType(minimum=1),
        default=DEFAULT_DISCOVERY_SAMPLE_SIZE,
        title="Discovery sample size",
        description="How many records of each view discovery reads to infer its schema.",
    ),
    th.Property(
        "request_timeout",
        th.IntegerType(minimum=1),
        default=DEFAULT_REQUEST_TIMEOUT,
        title="Request timeout (seconds)",
        description="Seconds to wait for the server to connect or to send the next bytes.",
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0),
        default=DEFAULT_MAX_RETRIES,
        title="Maximum retries",
        description="Retries of one request after 429, 5xx, timeouts and dropped connections.",
    ),
    th.Property(
        "max_retry_seconds",
        th.IntegerType(minimum=0),
        default=DEFAULT_MAX_RETRY_SECONDS,
        title="Maximum retry time (seconds)",
        description="Upper bound on the total time spent waiting between retries of a request.",
    ),
    th.Property(
        "ca_bundle",
        th.StringType,
        title="CA bundle",
        description=(
            "Path to a PEM file of the certificate authorities to trust for HTTPS (a private "
            "CA, a TLS-inspecting proxy). Unset: the default trusted CAs. TLS certificates "
            "are always verified."
        ),
    ),
    th.Property(
        "progress_interval",
        th.IntegerType(minimum=0),
        default=DEFAULT_PROGRESS_INTERVAL,
        title="Progress interval (seconds)",
        description=(
            "Log a progress line per stream this often (records so far, bookmark, "
            "records/s, requests, retries); 0 turns it off. A summary per stream is "
            "always logged."
        ),
    ),
).to_dict()
CONFIG_SCHEMA["properties"]["views"]["minItems"] = 1


@dataclass(frozen=True)
class ViewSettings:
    """Everything one stream needs to know about its view, with tap-wide defaults applied."""

    name: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    cursor_field: str = DEFAULT_CURSOR_FIELD
    cursor_parameter: str = DEFAULT_CURSOR_PARAMETER
    state_field: str = DEFAULT_STATE_FIELD
    deleted_states: frozenset[str] = frozenset(DEFAULT_DELETED_STATES)
    deleted_at_field: str | None = None
    schema_overrides: dict[str, dict[str, t.Any]] = field(default_factory=dict)
    field_types: dict[str, str] = field(default_factory=dict)
    flatten_selections: bool = True
    timezone: str | None = None
    on_type_error: str = KEEP_RAW

    def query_params(self, cursor: int | None) -> dict[str, str]:
        """The view's URL parameters: the static ones, plus the cursor when there is one.

        Without a cursor the view returns every record ("Previous Last Submission ID does
        not contain data"), which is what a first sync wants.
        """
        params = dict(self.params)
        if cursor is not None:
            params[self.cursor_parameter] = str(cursor)
        return params

    @classmethod
    def from_config(
        cls, config: t.Mapping[str, t.Any], view: t.Mapping[str, t.Any]
    ) -> ViewSettings:
        """Resolve one `views[]` item against the tap-wide settings."""

        def setting(key: str, default: t.Any) -> t.Any:
            if view.get(key) is not None:
                return view[key]
            if config.get(key) is not None:
                return config[key]
            return default

        return cls(
            name=view["name"],
            url=view["url"],
            params={str(k): _param_text(v) for k, v in (view.get("params") or {}).items()},
            cursor_field=setting("cursor_field", DEFAULT_CURSOR_FIELD),
            cursor_parameter=setting("cursor_parameter", DEFAULT_CURSOR_PARAMETER),
            state_field=setting("state_field", DEFAULT_STATE_FIELD),
            deleted_states=frozenset(setting("deleted_states", DEFAULT_DELETED_STATES)),
            deleted_at_field=setting("deleted_at_field", None),
            schema_overrides=dict(view.get("schema") or {}),
            field_types={str(k): str(v) for k, v in (view.get("field_types") or {}).items()},
            flatten_selections=bool(setting("flatten_selections", True)),
            timezone=setting("timezone", None),
            on_type_error=setting("on_type_error", KEEP_RAW),
        )


def resolve_views(config: t.Mapping[str, t.Any]) -> list[ViewSettings]:
    """Resolve and cross-check every configured view.

    JSON schema validation already checked each item's shape; what it cannot see is a
    problem between items, or a URL that is not one.
    """
    views = [ViewSettings.from_config(config, view) for view in config.get("views") or []]
    errors: list[str] = []
    seen: set[str] = set()
    for view in views:
        if not re.match(VIEW_NAME_PATTERN, view.name):
            errors.append(
                f"view name {view.name!r}: use letters, digits and _ only, not starting "
                "with a digit (it becomes the table name)"
            )
        if view.name in seen:
            errors.append(f"view name {view.name!r} is used twice: stream names must be unique")
        seen.add(view.name)
        parts = urlsplit(view.url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            errors.append(
                f"view {view.name!r}: url must be the full http(s) URL of the view "
                "as the App Editor shows it"
            )
        if parts.username or parts.password:
            errors.append(
                f"view {view.name!r}: put credentials in username/password, not in the url"
            )
        if view.cursor_parameter in view.params:
            errors.append(
                f"view {view.name!r}: params must not set {view.cursor_parameter!r}; "
                "the tap sends it (use start_last_submission_id to choose a start)"
            )
        errors.extend(_type_setting_errors(view))
    if not views:
        errors.append("views: configure at least one synchronization view")
    if errors:
        raise ConfigValidationError("Invalid tap-flowfinity views", errors=errors)
    return views


def _type_setting_errors(view: ViewSettings) -> list[str]:
    """What JSON schema cannot check in the type settings: a real zone, a known kind."""
    errors: list[str] = []
    if view.timezone is not None:
        try:
            ZoneInfo(view.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(
                f"view {view.name!r}: timezone {view.timezone!r} is not an IANA time zone "
                "name (e.g. Europe/Berlin, America/Vancouver, UTC)"
            )
    for name, kind in view.field_types.items():
        if kind not in DECLARABLE_KINDS:
            errors.append(
                f"view {view.name!r}: field_types[{name!r}] is {kind!r}; use one of "
                + ", ".join(DECLARABLE_KINDS)
            )
    if view.on_type_error not in ON_TYPE_ERROR_CHOICES:
        errors.append(
            f"view {view.name!r}: on_type_error must be one of " + ", ".join(ON_TYPE_ERROR_CHOICES)
        )
    return errors


def _param_text(value: t.Any) -> str:
    """Render a static view parameter the way Flowfinity expects it in a URL."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
