"""meltano.yml as the real Meltano reads it: its environments, and a config the tap accepts
without a warning (every key Meltano passes is a setting the tap knows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tap_flowfinity.tap import TapFlowfinity
from tap_flowfinity.unknown_settings import check_supported, unknown_setting_warnings
from tests.harness.meltano import MeltanoEnv, ensure_installed, run_meltano

pytestmark = pytest.mark.e2e  # runs the real Meltano


def _config(env: MeltanoEnv, plugin: str) -> dict:
    out = run_meltano(["--environment=dev", "config", "print", plugin], env=env, timeout=120)
    return json.loads(out.stdout)


def test_meltano_yml_dev_environment(tmp_path: Path) -> None:
    env = MeltanoEnv(
        sim_port=4711,
        home=tmp_path,
        extra={
            "PG_HOST": "127.0.0.1",
            "PG_PORT": "6543",
            "PG_USER": "postgres",
            "PG_PASSWORD": "x",
            "PG_DATABASE": "db",
        },
    )
    tap = _config(env, "tap-flowfinity")
    assert tap["username"] == "integration"
    assert [v["name"] for v in tap["views"]] == ["leads", "visits"]
    assert all(v["url"].startswith("http://127.0.0.1:4711/") for v in tap["views"])
    assert tap["cursor_parameter"] == "PreviousLastSubmissionId"
    assert tap["deleted_states"] == ["Deleted"]
    target = _config(env, "target-postgres")
    assert target["port"] == 6543
    assert target["default_target_schema"] == "flowfinity"
    assert target["add_record_metadata"] is True
    assert target["hard_delete"] is False


def test_meltano_yml_prod_environment_reads_env_vars(tmp_path: Path) -> None:
    views = [{"name": "orders", "url": "https://flowfinity.example/api/views/OrdersSync"}]
    env = MeltanoEnv(
        home=tmp_path,
        extra={
            "TAP_FLOWFINITY_USERNAME": "svc",
            "TAP_FLOWFINITY_PASSWORD": "pw",
            "TAP_FLOWFINITY_VIEWS": json.dumps(views),
            "TARGET_POSTGRES_HOST": "db.internal",
            "TARGET_POSTGRES_PORT": "5433",
        },
    )
    tap = json.loads(
        run_meltano(["--environment=prod", "config", "print", "tap-flowfinity"], env=env).stdout
    )
    assert tap["username"] == "svc"
    assert tap["views"] == views
    target = json.loads(
        run_meltano(["--environment=prod", "config", "print", "target-postgres"], env=env).stdout
    )
    assert target["host"] == "db.internal"
    assert target["port"] == 5433


def test_the_config_meltano_passes_the_tap_has_no_unknown_setting(tmp_path: Path) -> None:
    """The exact file `meltano run` hands the tap: every key in it is a setting the tap knows."""
    ensure_installed("tap-flowfinity")
    env = MeltanoEnv(sim_port=4711, home=tmp_path)
    out = run_meltano(
        ["--environment=dev", "invoke", "--dump=config", "tap-flowfinity"], env=env, timeout=120
    )
    config = json.loads(out.stdout)
    assert {"username", "password", "views", "lookback", "cursor_field"} <= set(config)
    check_supported(config)
    assert unknown_setting_warnings(config, TapFlowfinity.final_config_schema()) == []
