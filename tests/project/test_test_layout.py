"""The tests stay where README "Development" says a newcomer finds them.

`tests/unit/` is the fast loop: a module there that starts the simulator, PostgreSQL or Meltano
belongs in `tests/e2e/`. Loose files at the root of `tests/` have no home: every test lives in
the folder of what it checks.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS = REPO_ROOT / "tests"
# What starts a server in a test: the harness's classes and the shared fixtures (conftest.py).
SERVER_NAMES = frozenset({"Simulator", "ThrowawayPostgres", "MeltanoEnv", "run_meltano"})
SERVER_FIXTURES = frozenset({"simulator", "postgres", "pg_database", "meltano_env"})


def server_uses(path: Path) -> list[str]:
    """What in a test module starts a server (or marks it e2e), by line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Name) and node.id in SERVER_NAMES:
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute) and node.attr == "e2e":
            found.append((node.lineno, "marked e2e"))
        elif isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            fixtures = {arg.arg for arg in node.args.args} & SERVER_FIXTURES
            found.extend((node.lineno, f"fixture {name}") for name in sorted(fixtures))
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_no_unit_test_starts_a_server():
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{use}"
        for path in sorted((TESTS / "unit").glob("test_*.py"))
        for use in server_uses(path)
    ]
    assert not offenders, "move these modules to tests/e2e/:\n" + "\n".join(offenders)


def test_no_test_file_is_loose_at_the_root_of_tests():
    loose = sorted(path.name for path in TESTS.glob("test_*.py"))
    assert not loose, f"give these a folder (see README 'Development'): {loose}"


def test_the_check_sees_a_server(tmp_path):
    module = tmp_path / "test_x.py"
    module.write_text(
        "import pytest\n"
        "pytestmark = pytest.mark.e2e\n"
        "def test_a(simulator):\n"
        "    with Simulator() as sim:\n"
        "        pass\n"
    )
    assert server_uses(module) == ["2: marked e2e", "3: fixture simulator", "4: Simulator"]
