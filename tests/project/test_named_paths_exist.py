"""Every repository file a comment, docstring or document names exists.

A comment that names the test proving a claim (streams.py names tests/unit/test_fieldtypes.py)
sends a maintainer to the proof; when the file is renamed or the claim moves, the pointer must
move too. The scan covers the code,
the build and Meltano files, README.md, CHANGELOG.md and docs/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("tap_flowfinity", "flowfinity_simulator", "tests", "benchmarks", "scripts", "plugins")
TOP_FILES = ("Makefile", "README.md", "CHANGELOG.md", "meltano.yml", "pyproject.toml")
SCANNED_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".toml"}
# A repository-relative path: one of the top folders, then the rest, ending in a file type. Not
# preceded by a path or word character, so a URL's or another repository's path
# (`utility_scripts/...`, `https://host/tests/...`) is not taken for one of ours.
NAMED_PATH = re.compile(
    r"(?<![\w./-])"
    r"((?:tap_flowfinity|flowfinity_simulator|tests|benchmarks|scripts|docs|plugins)"
    r"/[\w/.-]*\w\.(?:py|md|yml|json|svg))"
    r"(?![\w-])"
)


def scanned_files() -> Iterator[Path]:
    """The repository's text files that may name other files (no virtualenvs, no caches)."""
    for name in TOP_FILES:
        yield REPO_ROOT / name
    yield from sorted((REPO_ROOT / "docs").glob("*.md"))
    for folder in CODE_DIRS:
        for path in sorted((REPO_ROOT / folder).rglob("*")):
            parts = path.relative_to(REPO_ROOT).parts
            hidden = any(part.startswith(".") or part == "__pycache__" for part in parts)
            if path.is_file() and path.suffix in SCANNED_SUFFIXES and not hidden:
                yield path


def missing_paths(text: str) -> list[tuple[int, str]]:
    """(line number, path) of each named path that does not exist in the repository."""
    return [
        (number, found.group(1))
        for number, line in enumerate(text.splitlines(), start=1)
        for found in NAMED_PATH.finditer(line)
        if not (REPO_ROOT / found.group(1)).exists()
    ]


def test_every_named_repository_path_exists():
    missing = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {named}"
        for path in scanned_files()
        for number, named in missing_paths(path.read_text(encoding="utf-8"))
    ]
    assert not missing, "named but not in the repository:\n" + "\n".join(missing)


def test_the_scan_reads_the_places_paths_are_named_in():
    scanned = {path.relative_to(REPO_ROOT).as_posix() for path in scanned_files()}
    assert {"README.md", "CHANGELOG.md", "Makefile", "docs/contract.md"} <= scanned
    assert {"tap_flowfinity/streams.py", "tests/conftest.py", "scripts/demo.py"} <= scanned
    assert not any(".venv" in name or "__pycache__" in name for name in scanned)


def test_the_scan_finds_a_missing_path_and_only_ours():
    gone = "tests/unit/" + "test_no_such_module.py"  # split: this file is scanned too
    text = "\n".join(
        [
            "# tap_flowfinity/streams.py exists; so does `tests/conftest.py`.",
            f"# ({gone}) checks it",
            "Hub's utility_scripts/plugin_definitions/" + "plugin_schema_validate.py is theirs",
            "https://example.com/tests/" + "elsewhere.py is a URL",
        ]
    )
    assert missing_paths(text) == [(2, gone)]
