"""Tap settings: the config JSON schema, and the typed settings read from it once.

The setting names are part of the tap's contract with its users (README "Settings"); each
default is declared once, in the schema. Every per-view setting falls back to the tap-wide
one, so a project with many views states the common choices once and overrides them where
a view differs.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from tap_flowfinity.fieldtypes import DECLARABLE_KINDS, KEEP_RAW, ON_TYPE_ERROR_CHOICES

VIEW_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Settings a view can override: (name, type, title, description, tap-wide default).
_OVERRIDABLE: tuple[tuple[str, t.Any, str, str, t.Any], ...] = (
    (
        "cursor_field",
        th.StringType,
        "Cursor field",
        "Record field holding the submission id.",
        "lastSubmissionId",
    ),
    (
        "cursor_parameter",
        th.StringType,
        "Cursor parameter",
        "View parameter that receives the last processed submission id.",
        "PreviousLastSubmissionId",
    ),
    (
        "state_field",
        th.StringType,
        "State field",
        "Record field holding the workflow state name.",
        "State",
    ),
    (
        "deleted_states",
        th.ArrayType(th.StringType),
        "Deleted states",
        'Workflow state names that mean "deleted".',
        ["Deleted"],
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
    (
        "reconcile_every_hours",
        th.NumberType(minimum=0),
        "Reconcile every (hours)",
        "When the stream's last completed reconciliation is older than this, the run reads "
        "the whole view and ends with ACTIVATE_VERSION, so the target flags the rows the "
        "view no longer shows (records removed with Delete, records out of the view's "
        "filter, submissions that became visible after the lookback). 0: every run. "
        "Unset: only a run that reads from the start anyway (a first sync) reconciles.",
        None,
    ),
)


def _overridable_settings(*, per_view: bool) -> list[th.Property[t.Any]]:
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
        # Flowfinity assigns a submission id when a submission starts; one that commits
        # slowly becomes visible after larger ids were already read. Re-reading the last
        # 1,000 ids of the system-wide counter covers every submission in flight while the
        # previous run read, up to a site taking ~100 submissions per second with a
        # 10-second commit; the cost is re-reading this view's share of those ids (usually
        # a handful of records), upserted harmlessly by RecordID.
        default=1000,
        title="Lookback (submission ids)",
        description=(
            "How many submission ids below the bookmark each run re-reads, so that a "
            "submission that became visible late is not skipped. 0 disables the overlap."
        ),
    ),
    th.Property(
        "max_run_seconds",
        th.NumberType(exclusive_minimum=0),
        title="Maximum run time (seconds)",
        description=(
            "After this long (from the tap's start) a stream stops asking once the answer in "
            "hand is emitted, stores its bookmark and ends normally; the next run continues. "
            "A stream that starts later still reads one answer. Unset: no limit."
        ),
    ),
    th.Property(
        "state_message_frequency",
        th.IntegerType(minimum=1),
        default=1000,
        title="STATE message frequency",
        description="Emit a STATE message at least every this many records.",
    ),
    th.Property(
        "discovery_sample_size",
        th.IntegerType(minimum=1),
        default=200,
        title="Discovery sample size",
        description="How many records of each view discovery reads to infer its schema.",
    ),
    th.Property(
        "request_timeout",
        th.IntegerType(minimum=1),
        default=300,
        title="Request timeout (seconds)",
        description="Seconds to wait for the server to connect or to send the next bytes.",
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0),
        default=8,
        title="Maximum retries",
        description="Retries of one request after 429, 5xx, timeouts and dropped connections.",
    ),
    th.Property(
        "max_retry_seconds",
        th.IntegerType(minimum=0),
        default=600,
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
        "max_parallel_views",
        th.IntegerType(minimum=1),
        # Views are read ahead in background threads while the streams are still written one
        # after another. Four requests at once cut a many-view run to about a quarter of its
        # sequential time, yet stay well below what a small IIS site serves at once (and
        # below the six connections per host a web browser opens), so one tap never crowds
        # out the site's mobile users; 1 reads one view at a time, without threads.
        default=4,
        title="Parallel views",
        description=(
            "How many views are read from Flowfinity at once (records are still written one "
            "stream after another). The default 4 stays polite to a small site: fewer "
            "requests at once than one web browser opens. 1 reads one view at a time."
        ),
    ),
    th.Property(
        "progress_interval",
        th.IntegerType(minimum=0),
        default=30,
        title="Progress interval (seconds)",
        description=(
            "Log a progress line per stream this often (records so far, bookmark, "
            "records/s, requests, retries); 0 turns it off. A summary per stream is "
            "always logged."
        ),
    ),
).to_dict()
CONFIG_SCHEMA["properties"]["views"]["minItems"] = 1


def schema_default(name: str) -> t.Any:
    """The default the config schema declares for a tap-wide setting (None: no default)."""
    return CONFIG_SCHEMA["properties"][name].get("default")


def _setting(config: t.Mapping[str, t.Any], name: str) -> t.Any:
    """A tap-wide setting: as configured, else the schema's default.

    The SDK fills the schema's defaults in when it validates the config; reading them from
    the schema here too keeps an unvalidated config (a test's, `--about`'s) to the same
    defaults, declared once.
    """
    value = config.get(name)
    return schema_default(name) if value is None else value


@dataclass(frozen=True)
class ViewSettings:
    """Everything one stream needs to know about its view, with tap-wide settings applied."""

    name: str
    url: str
    params: dict[str, str]
    cursor_field: str
    cursor_parameter: str
    state_field: str
    deleted_states: frozenset[str]
    deleted_at_field: str | None
    schema_overrides: dict[str, dict[str, t.Any]]
    field_types: dict[str, str]
    flatten_selections: bool
    timezone: str | None
    on_type_error: str
    reconcile_every_hours: float | None = None

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
        """Resolve one `views[]` item: each overridable setting falls back to the tap-wide one."""

        def setting(key: str) -> t.Any:
            value = view.get(key)
            return _setting(config, key) if value is None else value

        return cls(
            name=view["name"],
            url=view["url"],
            params={str(k): _param_text(v) for k, v in (view.get("params") or {}).items()},
            cursor_field=setting("cursor_field"),
            cursor_parameter=setting("cursor_parameter"),
            state_field=setting("state_field"),
            deleted_states=frozenset(setting("deleted_states")),
            deleted_at_field=setting("deleted_at_field"),
            schema_overrides=dict(view.get("schema") or {}),
            field_types={str(k): str(v) for k, v in (view.get("field_types") or {}).items()},
            flatten_selections=bool(setting("flatten_selections")),
            timezone=setting("timezone"),
            on_type_error=setting("on_type_error"),
            reconcile_every_hours=_number_or_none(setting("reconcile_every_hours")),
        )


@dataclass(frozen=True)
class TapSettings:
    """The tap's settings, typed, with the schema's defaults applied: read once, at start.

    Nothing else reads the raw config, so a setting's name, type and default live in the
    config schema above and here, nowhere else.
    """

    username: str
    password: str = field(repr=False)  # never printed, not even by a debugger's repr
    views: tuple[ViewSettings, ...]
    start_last_submission_id: int | None
    lookback: int
    max_run_seconds: float | None
    state_message_frequency: int
    discovery_sample_size: int
    request_timeout: int
    max_retries: int
    max_retry_seconds: int
    ca_bundle: str | None
    progress_interval: int
    max_parallel_views: int

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> TapSettings:
        """Read and cross-check the settings (the SDK validated each value's shape already).

        Raises:
            ConfigValidationError: what the JSON schema cannot check (see `resolve_views`).

        """
        start = config.get("start_last_submission_id")
        return cls(
            username=str(config.get("username") or ""),
            password=str(config.get("password") or ""),
            views=tuple(resolve_views(config)),
            start_last_submission_id=None if start is None else int(start),
            lookback=int(_setting(config, "lookback")),
            max_run_seconds=_number_or_none(config.get("max_run_seconds")),
            state_message_frequency=int(_setting(config, "state_message_frequency")),
            discovery_sample_size=int(_setting(config, "discovery_sample_size")),
            request_timeout=int(_setting(config, "request_timeout")),
            max_retries=int(_setting(config, "max_retries")),
            max_retry_seconds=int(_setting(config, "max_retry_seconds")),
            ca_bundle=config.get("ca_bundle") or None,
            progress_interval=int(_setting(config, "progress_interval")),
            max_parallel_views=int(_setting(config, "max_parallel_views")),
        )


def resolve_views(config: t.Mapping[str, t.Any]) -> list[ViewSettings]:
    """Resolve every configured view and check what the config schema cannot.

    The JSON schema already checked each item's shape (names, URL scheme, kinds, choices);
    what it cannot see is a problem between items, a URL without a host, or a time zone
    that does not exist.
    """
    views = [ViewSettings.from_config(config, view) for view in config.get("views") or []]
    errors: list[str] = []
    seen: set[str] = set()
    for view in views:
        if view.name in seen:
            errors.append(f"view name {view.name!r} is used twice: stream names must be unique")
        seen.add(view.name)
        parts = urlsplit(view.url)
        if not parts.hostname:
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
        errors.extend(_timezone_errors(view))
    if not views:
        errors.append("views: configure at least one synchronization view")
    if errors:
        raise ConfigValidationError("Invalid tap-flowfinity views", errors=errors)
    return views


def _timezone_errors(view: ViewSettings) -> list[str]:
    """A time zone must exist (JSON schema can only check that it is text)."""
    if view.timezone is None:
        return []
    try:
        ZoneInfo(view.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return [
            f"view {view.name!r}: timezone {view.timezone!r} is not an IANA time zone "
            "name (e.g. Europe/Berlin, America/Vancouver, UTC)"
        ]
    return []


def _number_or_none(value: t.Any) -> float | None:
    """An optional number setting (unset: None)."""
    return None if value is None else float(value)


def _param_text(value: t.Any) -> str:
    """Render a static view parameter the way Flowfinity expects it in a URL."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
