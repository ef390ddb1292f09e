"""Write plugins/extractors/tap-flowfinity--flowfinity.yml (Meltano Hub format) from meltano.yml.

    python scripts/hub_definition.py

tests/project/test_settings_listings_follow_the_tap.py fails when the file and meltano.yml's
settings differ.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
HUB_FILE = REPO_ROOT / "plugins" / "extractors" / "tap-flowfinity--flowfinity.yml"
HEADER = """\
# Meltano Hub plugin definition (hub.meltano.com format) for tap-flowfinity.
# Generated from meltano.yml by scripts/hub_definition.py;
# tests/project/test_settings_listings_follow_the_tap.py keeps it, meltano.yml and the tap's
# settings in sync. repo / pip_url / docs: set them on publishing.
"""


def main() -> None:
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-flowfinity")
    hub = {
        "name": "tap-flowfinity",
        "variant": "flowfinity",
        "namespace": "tap_flowfinity",
        "label": "Flowfinity",
        "description": "Flowfinity synchronization views, incrementally by lastSubmissionId, "
        "with soft deletes",
        "logo_url": "https://www.flowfinity.com/favicon.ico",
        "domain_url": "https://www.flowfinity.com",
        "docs": "https://github.com/flowfinity/tap-flowfinity#readme",
        "repo": "https://github.com/flowfinity/tap-flowfinity",
        "pip_url": "git+https://github.com/flowfinity/tap-flowfinity.git",
        "executable": "tap-flowfinity",
        "maintenance_status": "active",
        # Hub requires a quality rating; Meltano assigns gold/silver/bronze on review.
        "quality": "unknown",
        "keywords": ["meltano_sdk"],
        "capabilities": tap["capabilities"],
        "settings_group_validation": tap["settings_group_validation"],
        "settings": tap["settings"],
        "commands": tap.get("commands", {}),
    }
    HUB_FILE.parent.mkdir(parents=True, exist_ok=True)
    HUB_FILE.write_text(
        HEADER + yaml.safe_dump(hub, sort_keys=False, width=100, allow_unicode=True)
    )


if __name__ == "__main__":
    main()
