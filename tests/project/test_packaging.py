"""What a user gets from `pip install`: clean builds, SPDX license metadata, one version.

Builds really run (PEP 517, isolated, fetching setuptools from the package index), because a
deprecation warning or a file missing from the sdist only shows in a real build.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest

import tap_flowfinity

REPO_ROOT = Path(__file__).resolve().parents[2]
# The one place the version is written (a regex: tomllib is not in Python 3.10).
VERSION = re.search(r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M)[1]
WARNING = re.compile(r"deprecat|BuildBackendWarning|SetuptoolsWarning", re.IGNORECASE)

pytestmark = pytest.mark.slow
# Both build in the checkout (its build/ and *.egg-info): on one worker, one after the other.
builds_in_the_checkout = pytest.mark.xdist_group("builds_in_the_checkout")


def warnings_in(output: str) -> list[str]:
    # pip's own notes about this machine's index configuration are not the build's.
    return [line for line in output.splitlines() if WARNING.search(line)]


def test_version_comes_from_the_package_metadata():
    assert tap_flowfinity.__version__ == VERSION
    out = subprocess.run(
        [sys.executable, "-m", "tap_flowfinity", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"tap-flowfinity v{VERSION}," in out


def test_python_m_runs_the_tap_cli():
    out = subprocess.run(
        [sys.executable, "-m", "tap_flowfinity", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '"name": "tap-flowfinity"' in out


@builds_in_the_checkout
def test_wheel_and_sdist_build_cleanly(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert warnings_in(proc.stdout + proc.stderr) == []

    (wheel,) = tmp_path.glob("tap_flowfinity-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = HeaderParser().parsestr(zf.read(meta_name).decode())
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Version"] == VERSION
    assert "tap_flowfinity/__main__.py" in names
    assert any(n.startswith("flowfinity_simulator/") for n in names)
    assert not any(n.startswith("tests/") for n in names)

    (sdist,) = tmp_path.glob("tap_flowfinity-*.tar.gz")
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    assert {"LICENSE", "README.md", "pyproject.toml", "tap_flowfinity/tap.py"} <= members


@builds_in_the_checkout
def test_pip_install_into_a_fresh_venv_prints_no_warnings(tmp_path: Path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = str(env_dir / "bin" / "pip")
    # A current pip, as `make venv` has: older ones hide the build backend's warnings.
    subprocess.run([pip, "install", "-q", "--upgrade", "pip"], capture_output=True, check=True)
    proc = subprocess.run(
        [pip, "install", "--no-deps", "--no-cache-dir", str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "Successfully installed tap-flowfinity" in output
    assert warnings_in(output) == []
