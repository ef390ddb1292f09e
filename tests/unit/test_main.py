"""The `tap-flowfinity` command: the collector rests during the imports, not during the run."""

from __future__ import annotations

import gc

import pytest

from tap_flowfinity import __main__ as command
from tap_flowfinity.tap import TapFlowfinity


def test_the_run_has_the_collector_on_and_the_imports_set_aside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, object] = {}

    def cli() -> None:
        seen["enabled"] = gc.isenabled()
        seen["frozen"] = gc.get_freeze_count()

    monkeypatch.setattr(TapFlowfinity, "cli", cli)
    try:
        command.main()
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
    assert seen["enabled"] is True, "the run would never collect cyclic garbage"
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000
