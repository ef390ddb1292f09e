"""Every place the tap touches the Singer SDK's private internals, and why.

The rest of the package uses the SDK's public API only; what the public API cannot do
lives here, each touch with its reason. `PRIVATE_TOUCH_POINTS` lists them all, and
tests/unit/test_sdk_seam.py fails when an SDK upgrade removes or re-signs one, so an
upgrade that would silently break bookmarks or the fast path breaks CI instead. Every
override is marked `@override`, so mypy also fails when a base method disappears.

Where speed is the reason, the cost is measured by `benchmarks/seam_costs.py` (a first sync
of 200k synthetic records, each override undone alone, CPU of the sync relative to the tap
as shipped; 2 CPUs, noisy: x1.10 means about 10% more CPU without the override).
"""

from __future__ import annotations

import typing as t

from singer_sdk.helpers._typing import _is_exclusive_boolean_type
from singer_sdk.plugin_base import SingerCommand, _ConfigInput
from singer_sdk.streams import RESTStream
from typing_extensions import override

if t.TYPE_CHECKING:
    from types import TracebackType

    import click
    from singer_sdk.helpers.types import Context
    from singer_sdk.tap_base import Tap


class TouchPoint(t.NamedTuple):
    """One private SDK name the tap relies on, where it lives, and how it is used."""

    owner: str  # "module:Class" or "module"
    name: str
    use: str  # "override", "call", "read", "write", "import"
    # The signature relied on (str(inspect.signature(...))); "" for an attribute.
    signature: str


_STREAM = "singer_sdk.streams.core:Stream"

PRIVATE_TOUCH_POINTS: tuple[TouchPoint, ...] = (
    TouchPoint(
        _STREAM,
        "_increment_stream_state",
        "override",
        "(self, latest_record: 'types.Record', *, context: 'types.Context | None' = None)"
        " -> 'None'",
    ),
    TouchPoint(_STREAM, "_write_state_message", "override", "(self) -> 'None'"),
    TouchPoint(
        _STREAM, "_finalize_state", "override", "(self, state: 'dict | None' = None) -> 'None'"
    ),
    TouchPoint(
        _STREAM,
        "_sync_records",
        "override",
        "(self, context: 'types.Context | None' = None, *, write_messages: 'bool' = True)"
        " -> 't.Generator[dict, t.Any, t.Any]'",
    ),
    TouchPoint(
        _STREAM, "_write_record_message", "override", "(self, record: 'types.Record') -> 'None'"
    ),
    TouchPoint(_STREAM, "_write_schema_message", "call", "(self) -> 'None'"),
    TouchPoint(
        _STREAM,
        "_write_starting_replication_value",
        "call",
        "(self, context: 'types.Context | None') -> 'None'",
    ),
    TouchPoint(
        _STREAM, "_check_max_record_limit", "call", "(self, current_record_index: 'int') -> 'None'"
    ),
    TouchPoint(_STREAM, "_stream_maps", "write", ""),
    TouchPoint(_STREAM, "_stream_version", "write", ""),
    TouchPoint(
        _STREAM,
        "_write_activate_version_message",
        "call",
        "(self, full_table_version: 'int') -> 'None'",
    ),
    TouchPoint(
        "singer_sdk.helpers._typing",
        "_is_exclusive_boolean_type",
        "import",
        "(property_schema: 'dict') -> 'bool'",
    ),
    TouchPoint("singer_sdk.plugin_base", "_ConfigInput", "import", ""),
    # Public on a class the SDK defines in a private module (`Stream.state_manager`'s).
    TouchPoint("singer_sdk.streams._state:StreamStateManager", "is_flushed", "write", ""),
)


class SeamStream(RESTStream[int]):
    """The SDK's REST stream, with its private bookkeeping routed to the tap's own hooks.

    Subclasses implement the hooks (`note_cursor`, `before_state_message`,
    `write_record_message`, `after_sync_records`) and call the SDK only through the
    methods below.
    """

    def __init__(self, tap: Tap, name: str, schema: dict[str, t.Any] | None) -> None:
        super().__init__(tap=tap, name=name, schema=schema)
        self.tap = tap  # the SDK keeps it as the private `_tap` only

    # Hooks for the subclasses

    def note_cursor(self, record: dict[str, t.Any], context: Context | None) -> None:
        """A record went out: advance the bookmark (the SDK's behaviour, by default)."""
        self.advance_bookmark(record, context)

    def before_state_message(self) -> None:
        """A STATE is about to be written or the stream's state finalized."""

    def write_record_message(self, record: dict[str, t.Any]) -> None:
        """Write the record's RECORD messages (the SDK's way, by default)."""
        self.write_record_messages_the_sdks_way(record)

    def after_sync_records(self) -> None:
        """The stream's record loop ended, normally or by an exception."""

    # The SDK's private methods, overridden to reach the hooks

    @override
    def _increment_stream_state(
        self, latest_record: dict[str, t.Any], *, context: Context | None = None
    ) -> None:
        # Why private: the SDK has no public per-record state hook. ViewStream defers the
        # state update to the next STATE (the SDK's per-record update: x1.24 CPU) and never
        # moves a bookmark back when the lookback re-reads records below it.
        self.note_cursor(latest_record, context)

    @override
    def _write_state_message(self) -> None:
        # Why private: the deferred bookmark must be in the state before any STATE goes
        # out, and the SDK writes STATE only through this method.
        self.before_state_message()
        super()._write_state_message()

    @override
    def _finalize_state(self, state: dict[str, t.Any] | None = None) -> None:
        # Why private: the SDK finalizes (and may then write) the state here at the end
        # of a stream, bypassing `_write_state_message`.
        self.before_state_message()
        super()._finalize_state(state)

    # Whether a plain stream's records go through `plain_record_loop` (False: the SDK's loop
    # always; tests/e2e/test_fast_path_changes_no_output.py compares the two).
    use_plain_record_loop: t.ClassVar[bool] = True

    @override
    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> t.Generator[dict[str, t.Any], t.Any, t.Any]:
        # Why private: no public hook runs when a stream's sync fails (`Stream.sync` and
        # `Tap.sync_all` are final), and records the writer buffered must still go out.
        # And the SDK's loop, general enough for partitions and child streams, costs more
        # than `plain_record_loop` for a stream with neither (the SDK's loop: x1.10 CPU).
        plain = (
            self.use_plain_record_loop
            and write_messages
            and context is None
            and self.selected
            and not self.child_streams
            and self.partitions is None
        )
        try:
            if plain:
                yield from self.plain_record_loop()
            else:
                yield from super()._sync_records(context, write_messages=write_messages)
        finally:
            self.after_sync_records()

    def plain_record_loop(self) -> t.Generator[dict[str, t.Any], t.Any, t.Any]:
        """The SDK's `_sync_records` for a plain stream, each record's hooks called directly.

        Plain: selected, writing messages, without context, partitions or child streams.
        The steps are the SDK's, in its order; the hooks (`post_process`,
        `write_record_message`, `note_cursor`) are those its private methods reach.

        Why private: the SDK's steps around the records (`_write_starting_replication_value`,
        `_check_max_record_limit`, `_finalize_state`) have no public name.
        tests/unit/test_sdk_seam.py fails when the SDK's loop changes, so an upgrade
        re-checks this copy against it.
        """
        record_counter = self.get_record_counter()
        timer = self.get_sync_timer()
        post_process, write, note = self.post_process, self.write_record_message, self.note_cursor
        count = record_counter.increment
        limit, every = self.ABORT_AT_RECORD_COUNT, self.STATE_MSG_FREQUENCY
        index = 0
        with record_counter, timer:
            record_counter.with_context({})
            timer.with_context({})
            self._write_starting_replication_value(None)
            for record in self.get_records(None):
                if limit is not None:
                    self._check_max_record_limit(current_record_index=index)
                processed = post_process(record, None)
                if processed is None:
                    continue
                write(processed)
                note(processed, None)
                if (index + 1) % every == 0:
                    self._write_state_message()
                count()
                yield processed
                index += 1
            self._finalize_state(self.get_context_state(None))
        self._finalize_state(self.stream_state)
        self._write_state_message()

    @override
    def _write_record_message(self, record: dict[str, t.Any]) -> None:
        # Why private: the SDK writes RECORDs only here; the fast path (fastpath.py)
        # replaces it where the SDK's selection and conformance are no-ops (the SDK's
        # path for every record: x3.97 CPU).
        self.write_record_message(record)

    # The SDK's private methods and attributes, called by what they do

    def advance_bookmark(self, record: dict[str, t.Any], context: Context | None) -> None:
        """The SDK's own state update for `record` (raises on a sort error)."""
        super()._increment_stream_state(record, context=context)

    def write_state_message(self) -> None:
        """Write a STATE message now if the state changed since the last one."""
        self._write_state_message()

    def write_record_messages_the_sdks_way(self, record: dict[str, t.Any]) -> None:
        """Selection, type conformance, stream maps and a RECORD per map: the SDK's path."""
        super()._write_record_message(record)

    def mark_state_unsent(self) -> None:
        """The state changed (or records went out) since the last STATE: write the next one.

        Why here: the SDK's STATE writer skips a state it thinks is already out, and this
        flag of its state manager (a class of a private SDK module) is how it knows.
        """
        self.state_manager.is_flushed = False

    def write_schema_message(self) -> None:
        """Announce the stream's current schema (through the stream maps)."""
        self._write_schema_message()

    def forget_stream_maps(self) -> None:
        """Drop the stream's cached maps, so the next use takes the mapper's current ones.

        Why private: `stream_maps` caches the mapper's list on first use, and re-registering
        a schema with the mapper replaces that list; there is no public way to refresh it.
        """
        self._stream_maps = None

    @property
    def record_version(self) -> int | None:
        """The RECORD messages' `version` (None: records carry none).

        Why private: the SDK keeps it only as `_stream_version`, and the fast path must
        write the same RECORD the SDK would.
        """
        return self._stream_version

    @record_version.setter
    def record_version(self, version: int | None) -> None:
        """Make the RECORDs from here on carry `version` (a reconciliation's table version).

        Why private: the SDK sets `_stream_version` only for a FULL_TABLE stream, and only
        to activate it before the first record; a reconciliation must activate it after
        the last one, so it sets the version itself and activates it with
        `write_activate_version`.
        """
        self._stream_version = version

    def write_activate_version(self, version: int) -> None:
        """An ACTIVATE_VERSION message per stream map (aliases, removed maps), as the SDK does.

        Why private: the SDK writes it only from `sync()`, before the first record.
        """
        self._write_activate_version_message(version)


def is_exclusive_boolean_type(property_schema: dict[str, t.Any]) -> bool:
    """Whether the SDK's conformance turns this property's values into booleans.

    Why private: the fast path skips conformance only where it is a no-op, and must agree
    with the SDK's own test of when it is not.
    """
    return _is_exclusive_boolean_type(property_schema)


def cli_config(ctx: click.Context) -> tuple[dict[str, t.Any], bool]:
    """The merged `--config` files and whether `--config=ENV` was given.

    Why private: the SDK's CLI parses `--config` into a private `_ConfigInput`; a callback
    that builds the tap itself (`--test`) must read it as the SDK's callbacks do.
    """
    config = ctx.params.get("config")
    if not isinstance(config, _ConfigInput):
        return {}, False
    return dict(config.config), config.parse_env


def replace_excepthook(
    command: click.Command,
    hook: t.Callable[[type[BaseException], BaseException, TracebackType | None], None],
) -> None:
    """Route the failures of the SDK's CLI command through `hook`.

    The SDK's `SingerCommand` installs its `excepthook` method as `sys.excepthook` when it
    runs (public, but a method, not a setting); replacing it on this one command object is
    the only way to report a failure differently.
    """
    if isinstance(command, SingerCommand):
        # A method replaced on one instance (an unbound callable): mypy forbids assigning
        # to a method and sees the bound method's type.
        command.excepthook = hook  # type: ignore[method-assign,assignment]
