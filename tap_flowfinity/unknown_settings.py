"""Settings the tap does not know, named with the closest one it does.

Neither the Singer SDK nor the tap rejects a key its config schema does not declare: a
misspelled `lookbak: 5000` or `views[].cursor_feild` would be ignored without a word, and the
run would use the default the user meant to change. Each unknown key is therefore one warning
line naming the closest known setting.

A warning, not an error: the SDK accepts any key, and a config that syncs today must keep
syncing after an upgrade even when it carries a key this version does not read (a note to
colleagues, a setting of another version of the tap, a key a wrapper adds). Meltano passes only
the settings a project declares, but `tap-flowfinity --config` takes whatever file it is given.
The one exception is a setting the SDK does act on and this tap cannot honour (`start_date`):
that is an invalid setting, reported as one line before anything runs.

The known names are the tap's final config schema (its own settings plus the SDK's built-ins,
which the SDK merges in: stream_maps, flattening_enabled, batch_config, ...), so a setting added
to the schema is known here without a list to update.
"""

from __future__ import annotations

import difflib
import typing as t

from singer_sdk.exceptions import ConfigValidationError

# Read by the Singer SDK from the config although no schema declares it: the REST stream's
# `user_agent`, which the tap sends as the User-Agent header of every request.
SDK_READ_SETTINGS = frozenset({"user_agent"})

# Settings the SDK acts on that this tap cannot honour, with the fix. The SDK starts an
# incremental stream from `start_date`, which makes a date the first submission id: every run
# would fail comparing it.
UNSUPPORTED_SETTINGS = {
    "start_date": (
        "this tap starts from a submission id, not a date: remove start_date and set "
        "start_last_submission_id (or leave it unset to read the whole history)"
    ),
    "batch_config": (
        "BATCH messages are not supported (a kill could store a bookmark ahead of the last "
        "file, and selection and stream maps would not apply): remove batch_config"
    ),
}


def check_supported(config: t.Mapping[str, t.Any]) -> None:
    """Refuse a setting the SDK would act on and the tap cannot honour.

    Raises:
        ConfigValidationError: one such setting or more, each with its fix.

    """
    errors = [f"{key}: {fix}" for key, fix in UNSUPPORTED_SETTINGS.items() if key in config]
    if errors:
        raise ConfigValidationError("Unsupported tap-flowfinity settings", errors=errors)


def known_settings(schema: t.Mapping[str, t.Any]) -> tuple[frozenset[str], frozenset[str]]:
    """The top-level and the per-view setting names the final config schema declares."""
    properties = schema.get("properties") or {}
    items = (properties.get("views") or {}).get("items") or {}
    top = frozenset(properties) | SDK_READ_SETTINGS
    return top, frozenset(items.get("properties") or {})


def unknown_setting_warnings(
    config: t.Mapping[str, t.Any], schema: t.Mapping[str, t.Any]
) -> list[str]:
    """One line per key of `config` (top level and each `views[]` item) the schema lacks."""
    top, per_view = known_settings(schema)
    warnings = [
        _warning(str(key), "", top, other=per_view, belongs="a per-view setting: set it in views[]")
        for key in config
        if key not in top
    ]
    views = config.get("views")
    for index, view in enumerate(views if isinstance(views, list) else []):
        if not isinstance(view, t.Mapping):
            continue  # the schema validation reports it
        name = view.get("name")
        where = f" in view {name!r}" if isinstance(name, str) and name else f" in views[{index}]"
        warnings.extend(
            _warning(
                str(key),
                where,
                per_view,
                other=top,
                belongs="a tap-wide setting: set it at the top level",
            )
            for key in view
            if key not in per_view
        )
    return warnings


def _warning(
    key: str, where: str, known: frozenset[str], *, other: frozenset[str], belongs: str
) -> str:
    """The line for one unknown key, with the most useful hint there is.

    A key known in the other place is misplaced rather than misspelled; else the closest
    name here (difflib's), else where the settings are listed.
    """
    closest = difflib.get_close_matches(key, sorted(known), n=1)
    if key in other:
        hint = f" ({key} is {belongs})"
    elif closest:
        hint = f" (did you mean {closest[0]!r}?)"
    else:
        hint = " (`tap-flowfinity --about` lists the settings)"
    return f"Unknown setting {key!r}{where}{hint}: it is ignored"
