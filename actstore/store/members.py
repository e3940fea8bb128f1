"""A group's members and attributes as the types they must be: zarr types a member as ``Array | Group`` and an
attribute as any JSON value, and a member or attribute of the wrong kind is a damaged store, not data."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from ..errors import StoreFault


def array_in(group: zarr.Group, name: str) -> zarr.Array[Any]:
    """A member that must be an array."""
    found = group[name]
    if not isinstance(found, zarr.Array):
        raise StoreFault(f"{group.store_path}/{name} is a group where an array belongs: run actstore verify")
    return found


def values_in(group: zarr.Group, name: str) -> np.ndarray[Any, Any]:
    """A small array member, read whole."""
    return np.asarray(array_in(group, name)[...])


def group_in(group: zarr.Group, path: str) -> zarr.Group:
    """A member that must be a group (``KeyError`` when absent, as zarr says it)."""
    found = group[path]
    if not isinstance(found, zarr.Group):
        raise StoreFault(f"{group.store_path}/{path} is an array where a group belongs: run actstore verify")
    return found


def json_object(node: zarr.Group | zarr.Array[Any], key: str) -> dict[str, Any]:
    """An attribute that must be a JSON object (a spec, a stamp)."""
    found = node.attrs[key]
    if not isinstance(found, dict):
        raise StoreFault(f"{node.store_path}: attribute '{key}' is not a JSON object: run actstore verify")
    return found
