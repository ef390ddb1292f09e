"""The Meltano Hub definition passes Hub's own plugin-definition schema.

Hub rejects a definition its schema rejects (a missing `quality`, a misspelt key, an unknown
setting `kind`), so the check runs here the way Hub runs it: Draft 7, `$ref`s resolved by `$id`
across the copied schema files (tests/data/hub_schema/SOURCE.md names their origin).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO_ROOT / "tests" / "data" / "hub_schema"
HUB_FILE = REPO_ROOT / "plugins" / "extractors" / "tap-flowfinity--flowfinity.yml"


def extractor_validator() -> Draft7Validator:
    resources = []
    for path in SCHEMA_DIR.rglob("*.schema.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema, DRAFT7)))
    top = json.loads((SCHEMA_DIR / "plugin_definitions" / "extractors.schema.json").read_text())
    return Draft7Validator(top, registry=Registry().with_resources(resources))


def errors_of(definition: dict) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
        for e in extractor_validator().iter_errors(definition)
    ]


def test_hub_definition_passes_hubs_schema():
    assert errors_of(yaml.safe_load(HUB_FILE.read_text())) == []


def test_the_schema_check_catches_what_hub_rejects():
    definition = yaml.safe_load(HUB_FILE.read_text())
    assert errors_of({k: v for k, v in definition.items() if k != "quality"})
    assert errors_of({**definition, "pip_ulr": definition["pip_url"]})
    bad_setting = {**definition["settings"][0], "kind": "text"}
    assert errors_of({**definition, "settings": [bad_setting, *definition["settings"][1:]]})
