"""The store's layout as versioned JSON Schema (``schemas/store-v<N>.json``), checked on every open."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from ..errors import ActstoreError

SCHEMA_VERSION = 3
#: the version ``actstore upgrade`` migrates from (``migrate``)
UPGRADABLE = 2


@cache
def _schema() -> dict[str, Any]:
    text = resources.files("actstore.schemas").joinpath(f"store-v{SCHEMA_VERSION}.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate(kind: str, attrs: Mapping[str, Any], where: str) -> None:
    """Raise one readable line if ``attrs`` of a group of ``kind`` (root, extraction, ...) break the schema."""
    if kind == "root":
        found = attrs.get("actstore", {}).get("schema_version")
        if attrs.get("actstore", {}).get("upgrading"):
            raise ActstoreError(f"the upgrade of {where} was interrupted: run actstore upgrade {where} again")
        if found is not None and found != SCHEMA_VERSION:
            raise ActstoreError(
                f"{where} uses store schema version {found}; this actstore reads version {SCHEMA_VERSION} only"
                + (
                    " (version 1 stores lack checksums on most arrays: extract again into a new store)"
                    if found == 1
                    else f": run actstore upgrade {where}"
                    if found == UPGRADABLE
                    else ""
                )
            )
    schema = {"$ref": f"#/$defs/{kind}", "$defs": _schema()["$defs"]}
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(attrs))
    if error is not None:
        path = "/".join(map(str, error.absolute_path)) or "(top)"
        raise ActstoreError(f"{where} does not follow store schema v{SCHEMA_VERSION}: {path}: {error.message}")
