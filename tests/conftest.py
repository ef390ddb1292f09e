"""Shared fixtures: one PostgreSQL per session, a fresh database per test, the simulator.

Why a database per test rather than a schema: target-postgres creates its schema itself
(`default_target_schema`), and a whole database is the simplest unit to throw away, so one
test's tables, and their column types, can never shape another's.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Property tests judge the code, not the machine: on a loaded 2-CPU machine (three test
# workers, other jobs) generating an input may take seconds, and Hypothesis would fail the
# test for it (its `too_slow` health check and per-example `deadline` are clock readings).
settings.register_profile("flowfinity", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("flowfinity")

# pytest puts tests/ (this file's dir, no __init__.py) on sys.path, not the repo root;
# `tests.harness` is imported by that name here and by `python -m tests.harness.postgres`.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from flowfinity_simulator import Simulator  # noqa: E402
from tests.harness.meltano import DEV_PASSWORD, DEV_USERNAME, MeltanoEnv  # noqa: E402
from tests.harness.postgres import ThrowawayPostgres  # noqa: E402

# The shared fixtures that are (or need) a running server.
SERVER_FIXTURES = frozenset({"postgres", "pg_database", "simulator", "meltano_env"})
# Test modules (paths relative to the repository) that started a server.
_server_modules: set[str] = set()


def _note_server_start() -> None:
    """Record which test module a server starts for: the running test's, else the importer's."""
    current = os.environ.get("PYTEST_CURRENT_TEST")
    if current:
        _server_modules.add(current.split("::", 1)[0])
        return
    for frame in inspect.stack():  # started at import time (a module-level server)
        path = Path(frame.filename)
        if path.name.startswith("test_") and REPO_ROOT in path.parents:
            _server_modules.add(str(path.relative_to(REPO_ROOT)))
            return


def _noting_starts(start: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(start)
    def noted(*args: Any, **kwargs: Any) -> Any:
        _note_server_start()
        return start(*args, **kwargs)

    return noted


Simulator.start = _noting_starts(Simulator.start)  # type: ignore[method-assign]
ThrowawayPostgres.start = _noting_starts(ThrowawayPostgres.start)  # type: ignore[method-assign]


def _module_is_marked_e2e(item: pytest.Item) -> bool:
    marks = getattr(getattr(item, "module", None), "pytestmark", [])
    marks = marks if isinstance(marks, list) else [marks]
    return any(mark.name == "e2e" for mark in marks)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests that use the real servers as e2e, so `pytest -m "not e2e"` is a fast loop.

    Then put the tests marked slow first (otherwise in collection order): with the tests
    spread over workers (`make test`), a long test that starts last keeps one worker busy
    while the others sit idle. Every worker sorts the same collection the same way.
    """
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test whose module starts a server fails unless the module is marked e2e.

    The marker is what keeps `pytest -m "not e2e"` free of servers, so a module that starts
    one (in a test, a fixture, or at import) must say so: `pytestmark = pytest.mark.e2e`.
    """
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or report.failed or _module_is_marked_e2e(item):
        return
    module = item.nodeid.split("::", 1)[0]
    uses_server = SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
    if module in _server_modules or uses_server:
        report.outcome = "failed"
        report.longrepr = (
            f"{module} starts a server but is not marked e2e: add `pytestmark = pytest.mark.e2e`"
        )


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    """One throwaway PostgreSQL server for the whole session (starting one takes ~1 s)."""
    with ThrowawayPostgres(dbname="harness") as server:
        yield server


@pytest.fixture
def pg_database(postgres: ThrowawayPostgres) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards. Yields its name."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    try:
        yield name
    finally:
        postgres.drop_database(name)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """A running Flowfinity simulator with the dev credentials and 25 demo records per app."""
    with Simulator(
        username=DEV_USERNAME,
        password=DEV_PASSWORD,
        host="127.0.0.1",
        port=0,
        demo_records=25,
        seed=1,
    ) as sim:
        yield sim


def stream_name(view_key: str) -> str:
    """A valid stream (table) name for a simulator view key: letters, digits and _ only."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", view_key).strip("_").lower()
    return name if name and not name[0].isdigit() else f"v_{name}"


def _port_of(sim: Any) -> int:
    """The simulator's TCP port, read from its base URL (http://127.0.0.1:PORT/...)."""
    from urllib.parse import urlsplit

    port = urlsplit(sim.base_url).port
    assert port is not None, f"simulator base_url has no port: {sim.base_url}"
    return port


@pytest.fixture
def meltano_env(
    postgres: ThrowawayPostgres, pg_database: str, simulator: Any, tmp_path: Path
) -> MeltanoEnv:
    """An isolated Meltano setup: fresh database, own system DB (state), the simulator.

    The views come from the simulator itself (`view_keys()` / `view_url(key)`), so the
    tests do not depend on meltano.yml's placeholder URLs; the stream names are the keys.
    """
    from tests.harness.meltano import ensure_installed

    ensure_installed()
    views = [
        {"name": stream_name(key), "url": simulator.view_url(key)} for key in simulator.view_keys()
    ]
    return MeltanoEnv(
        pg=postgres,
        dbname=pg_database,
        sim_port=_port_of(simulator),
        views=views,
        home=tmp_path / "meltano",
    )
