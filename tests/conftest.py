"""Shared fixtures: one PostgreSQL per session, a fresh database per test, the simulator.

Why a database per test rather than a schema: target-postgres creates its schema itself
(`default_target_schema`), and a whole database is the simplest unit to throw away, so one
test's tables, and their column types, can never shape another's.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# pytest puts tests/ (this file's dir, no __init__.py) on sys.path, not the repo root;
# `tests.harness` is imported by that name here and by `python -m tests.harness.postgres`.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from flowfinity_simulator import Simulator  # noqa: E402
from tests.harness.meltano import DEV_PASSWORD, DEV_USERNAME, MeltanoEnv  # noqa: E402
from tests.harness.postgres import ThrowawayPostgres  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests that use the real servers as e2e, so `pytest -m "not e2e"` is a fast loop."""
    e2e_fixtures = {"postgres", "pg_database", "simulator", "meltano_env"}
    for item in items:
        if e2e_fixtures & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


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
