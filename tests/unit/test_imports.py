"""The tap's modules import each other without a circle (type-checking imports included).

A circle (tap -> doctor -> tap) makes a module impossible to read or test without the other;
each module sits on the ones below it, with tap.py at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tap_flowfinity

PACKAGE = Path(tap_flowfinity.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """The tap_flowfinity modules a file imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("tap_flowfinity.")}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {path.stem: path for path in PACKAGE.glob("*.py")}
    return {name: imported_modules(path) & set(modules) - {name} for name, path in modules.items()}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            circle = visit(imported, [*path, module])
            if circle:
                return circle
        done.add(module)
        return None

    for module in sorted(graph):
        circle = visit(module, [])
        if circle:
            return circle
    return None


def test_no_module_of_the_tap_imports_itself_through_others():
    circle = find_circle(import_graph())
    assert circle is None, "import circle: " + " -> ".join(f"{m}.py" for m in circle or [])


def test_the_doctor_sits_on_the_view_client_and_the_settings_not_on_the_tap():
    imported = import_graph()["doctor"]
    assert {"client", "settings"} <= imported
    assert not imported & {"tap", "streams", "writer"}


def test_the_circle_finder_finds_one():
    circle = find_circle({"tap": {"doctor"}, "doctor": {"client", "tap"}, "client": set()})
    assert circle is not None and circle[0] == circle[-1]
    assert sorted(circle[:-1]) == ["doctor", "tap"]
