"""README "Adding it to your Meltano project", run as written in a project of the user's own.

Most users meet the tap by adding it to a Meltano project they already have, not by cloning this
repository, so the steps are proved where they are used: a fresh `meltano init` project in a
temporary directory outside this checkout, each README block executed as it stands (the bash
blocks by bash, the meltano.yml block merged into the project's meltano.yml). Only what must
differ here is replaced, each replacement checked to find its text so that a README edit cannot
silently skip a step:

- the definition's URL becomes this checkout's file, and the loader comes from a definition file
  (this repository's target-postgres entry, with Hub's unpinned pip_url) instead of the Hub: the
  test stays offline;
- the tap's pip_url becomes a copy of this checkout (a package install, not `-e`: the build
  writes nothing into the checkout, and Meltano caches the catalog as it does for users);
- the site's host, the passwords and the database address become the simulator's and the
  throwaway PostgreSQL's.

`meltano install` runs uv offline: every package it needs is in uv's cache once
`make meltano-install` has installed the repository's own plugins.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

from tests.e2e.helpers import (
    README,
    SCHEMA,
    assert_table_matches_truth,
    recipe,
    sync_cursors,
    sync_records_sent,
    table_rows,
)
from tests.harness.meltano import BIN_DIR, DEV_PASSWORD, REPO_ROOT, error_lines

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # starts the simulator and PostgreSQL

LEADS = "leads"
LOOKBACK = 1000  # the tap's default
TAP_DEFINITION = REPO_ROOT / "plugins" / "extractors" / "tap-flowfinity--flowfinity.yml"
# What README's example URL and passwords stand for; each is replaced by the real thing here.
README_DEFINITION_URL = (
    "https://raw.githubusercontent.com/flowfinity/tap-flowfinity/main/"
    "plugins/extractors/tap-flowfinity--flowfinity.yml"
)
README_SITE = "https://site.example.com"
README_TAP_PASSWORD = "'the-integration-password'"
README_DB_PASSWORD = "'the-database-password'"
HUB_LOADER = "meltano add target-postgres --variant meltanolabs"
# Not part of the package: a copy of these would only slow the build down.
NOT_PACKAGED = shutil.ignore_patterns(
    *(".git", ".venv*", ".meltano", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"),
    *(".hypothesis", "output", "tmp"),
)
COMMAND_TIMEOUT_S = 300


def yaml_recipe(name: str) -> dict[str, t.Any]:
    """The README's yaml block that starts with `# recipe: <name>`."""
    for block in re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S):
        if block.startswith(f"# recipe: {name}\n"):
            return dict(yaml.safe_load(block))
    raise AssertionError(f"README has no yaml recipe {name!r}")


def replaced(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"the README step no longer contains {old!r}: update this test"
        text = text.replace(old, new)
    return text


def user_env() -> dict[str, str]:
    """A shell as a user's: this venv's `meltano` on PATH, none of the suite's settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MELTANO_", "TAP_FLOWFINITY_", "TARGET_POSTGRES_", "PG_"))
    }
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env["MELTANO_DISABLE_TRACKING"] = "true"
    env["UV_OFFLINE"] = "1"  # installs come from uv's cache, never the network
    return env


def bash(script: str, project: Path) -> subprocess.CompletedProcess[str]:
    """Run a README block in the project's directory, stopping at the first failing command."""
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=project,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, (
        f"{script}\nexited {result.returncode}:\n{error_lines(result.stderr)}\n"
        "(an install that finds a package missing from uv's cache: run `make meltano-install`)"
    )
    return result


def stored_bookmark(run_output: str) -> int:
    """The leads bookmark that the run recipe's `meltano state get` printed (its last line)."""
    state = json.loads(run_output.strip().splitlines()[-1])
    bookmark = state["singer_state"]["bookmarks"][LEADS]
    assert bookmark["replication_key"] == "lastSubmissionId"
    return int(bookmark["replication_key_value"])


def newest_cursor(simulator: t.Any) -> int:
    return max(int(r["lastSubmissionId"]) for r in simulator.truth(LEADS).values())


def merge_meltano_yml(project: Path, edits: dict[str, t.Any]) -> None:
    """Step 2: each plugin entry of README's block merged into the project's entry by name."""
    path = project / "meltano.yml"
    config = yaml.safe_load(path.read_text())
    for kind, plugins in edits["plugins"].items():
        for edit in plugins:
            (entry,) = [p for p in config["plugins"][kind] if p["name"] == edit["name"]]
            entry["pip_url"] = edit["pip_url"]
            entry.setdefault("config", {}).update(edit.get("config", {}))
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def loader_definition(path: Path) -> Path:
    """target-postgres as Hub defines it, from this repository's entry: offline, unpinned."""
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    (loader,) = [p for p in project["plugins"]["loaders"] if p["name"] == "target-postgres"]
    definition = {key: value for key, value in loader.items() if key != "config"}
    definition["pip_url"] = "meltanolabs-target-postgres"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return path


def test_added_to_an_existing_project_syncs_and_resumes_from_its_bookmark(
    simulator, postgres, pg_database, tmp_path
):
    project, source = tmp_path / "my-project", tmp_path / "tap-flowfinity"
    assert REPO_ROOT not in tmp_path.parents, "the project must live outside this checkout"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_PACKAGED)
    bash(f"meltano init {project} --no-usage-stats", tmp_path)

    # 1. The tap from the shipped definition, the loader as from the Hub.
    bash(
        replaced(
            recipe("add-to-a-project"),
            {
                README_DEFINITION_URL: str(TAP_DEFINITION),
                HUB_LOADER: "meltano add target-postgres --from-ref "
                + str(loader_definition(tmp_path / "target-postgres--meltanolabs.yml")),
            },
        ),
        project,
    )
    added = yaml.safe_load((project / "meltano.yml").read_text())["plugins"]
    assert set(added) == {"extractors", "loaders"}, "one extractor and one loader, nothing else"

    # 2. meltano.yml: pip_urls and the loader's settings; only where things are differs here.
    edits = yaml_recipe("add-to-a-project meltano.yml")
    (tap_edit,) = edits["plugins"]["extractors"]
    tap_edit["pip_url"] = str(source)
    (loader_edit,) = edits["plugins"]["loaders"]
    assert loader_edit["config"]["default_target_schema"] == SCHEMA
    server = postgres.target_env(pg_database)
    loader_edit["config"].update(
        host=server["PG_HOST"],
        port=int(server["PG_PORT"]),
        user=server["PG_USER"],
        database=server["PG_DATABASE"],
    )
    merge_meltano_yml(project, edits)

    # 3. Install and configure: the passwords land in .env, never in meltano.yml.
    bash(
        replaced(
            recipe("add-to-a-project-configure"),
            {
                README_SITE: simulator.base_url,
                README_TAP_PASSWORD: DEV_PASSWORD,
                README_DB_PASSWORD: server["PG_PASSWORD"],
            },
        ),
        project,
    )
    dotenv = (project / ".env").read_text()
    assert f"TAP_FLOWFINITY_PASSWORD='{DEV_PASSWORD}'" in dotenv
    assert DEV_PASSWORD not in (project / "meltano.yml").read_text()
    assert ".env" in (project / ".gitignore").read_text().split()

    # 4. The first run reads the whole view.
    run = recipe("add-to-a-project-run")
    first = stored_bookmark(bash(run, project).stdout)
    assert first == newest_cursor(simulator)
    assert_table_matches_truth(postgres, pg_database, simulator, LEADS)

    # Between two scheduled runs: other apps' submissions, then a new, a changed and a deleted
    # record in this one.
    simulator.advance_counter(5000)
    created = simulator.create(LEADS, {"FirstName": "Ada", "Company": "New Co"})
    updated_id, deleted_id = sorted(simulator.truth(LEADS))[3:5]
    simulator.update(LEADS, updated_id, {"Company": "Renamed Inc"})
    simulator.delete(LEADS, deleted_id)
    simulator.clear_request_log()

    # The same command again resumes from the bookmark.
    second = stored_bookmark(bash(run, project).stdout)

    assert sync_cursors(simulator, LEADS)[0] == first - LOOKBACK, "from the bookmark less lookback"
    assert None not in simulator.cursor_requests(LEADS), "never a request from scratch"
    since = first - LOOKBACK
    window = [r for r in simulator.truth(LEADS).values() if int(r["lastSubmissionId"]) > since]
    assert sync_records_sent(simulator, LEADS) == len(window), (
        "read once: a package install's catalog is cached, so the run did not discover again"
    )
    rows = table_rows(postgres, pg_database, LEADS)
    assert rows[created["RecordID"]]["FirstName"] == "Ada"
    assert rows[updated_id]["Company"] == "Renamed Inc"
    assert rows[deleted_id]["_sdc_deleted_at"] is not None
    assert_table_matches_truth(postgres, pg_database, simulator, LEADS)
    assert second == newest_cursor(simulator)
