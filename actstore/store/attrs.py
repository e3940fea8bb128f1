"""Group attributes: every write sealed with the digests that make an edited spec an error, and stamped; and the
root's consolidated metadata, kept current for plain xarray after every change."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import zarr
from zarr.errors import ZarrUserWarning

from .. import __version__
from ..errors import StoreFault
from ..specs import ExtractionSpec, from_attrs
from .integrity import StrictStore, seal
from .layout import sealed_arrays
from .members import json_object
from .paths import EXTRACTION_ROOTS
from .schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from zarr.abc.metadata import Metadata
    from zarr.abc.store import Store as ZarrStore

#: rounds of consolidating before leaving it to a writer still at work (which consolidates after its own writes)
CONSOLIDATE_ROUNDS = 5


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def stamp(state: str, created: str | None = None) -> dict[str, Any]:
    when = now()
    return {"version": __version__, "created": created or when, "updated": when, "state": state}


def new_root_attrs() -> dict[str, Any]:
    return {"actstore": {"schema_version": SCHEMA_VERSION, "version": __version__, "created": now(), "updated": now()}}


def is_complete(group: zarr.Group) -> bool:
    """Whether a group's stamp says every part of it is in."""
    return bool(json_object(group, "stamp")["state"] == "complete")


def put_attrs(group: zarr.Group, attrs: dict[str, Any]) -> None:
    """Every attribute write of a group: sealed with the digests ``Store._group`` checks and the CRC32Cs of what it
    holds written whole (``bound_arrays``), then consolidated, so that plain xarray sees a new group (or an
    extraction's new state) at once."""
    group.attrs.put(seal(group, attrs, bound_arrays(group, attrs)))
    consolidate(group.store)


def bound_arrays(group: zarr.Group, attrs: Mapping[str, Any]) -> list[str]:
    """The arrays whose chunks' CRC32Cs a group's seal records: an extraction's written whole (its units' are in
    their manifests), every array of the groups written at once (prompts, rankings, results)."""
    if group.path.startswith(EXTRACTION_ROOTS):
        return sealed_arrays(from_attrs(ExtractionSpec, attrs["spec"])) if "spec" in attrs else []
    return sorted(group.array_keys())


def consolidate(zstore: ZarrStore) -> None:
    """Write every group's and array's metadata into the root ``zarr.json`` (zarr's consolidated metadata), which
    ``xr.open_zarr``/``xr.open_datatree`` open a store with. actstore never reads it (``Store`` opens with
    ``use_consolidated=False``, every check reads each ``zarr.json``): it is a copy, and a concurrent writer (a rank of
    a sharded launch, another process on object storage) may overwrite it with a listing made before this one's
    writes. So the copy is read back after writing and compared with the hierarchy, and written again until the two
    agree: whoever writes it last has checked it, so a store no one writes any more has current consolidated metadata
    (a writer killed between a change and this call leaves it stale until the next write or ``actstore upgrade``).
    The sole writer (``StrictStore.sole_writer``) has nobody to check for: its copy is written once."""
    alone = isinstance(zstore, StrictStore) and zstore.sole_writer
    for _ in range(CONSOLIDATE_ROUNDS):
        with warnings.catch_warnings():  # zarr: "not part of the v3 spec yet"; a writer's temporary file listed
            warnings.filterwarnings("ignore", category=ZarrUserWarning)
            try:
                zarr.consolidate_metadata(zstore, zarr_format=3)
                if alone or is_consolidated(zstore):
                    return
            except StoreFault:  # a damaged zarr.json (verify --repair mends it, and consolidates): no copy at all
                _drop_consolidated(zstore)  # rather than one that still shows what was there
                return


def _drop_consolidated(zstore: ZarrStore) -> None:
    try:
        root = zarr.open_group(zstore, mode="r+", use_consolidated=False, zarr_format=3)
        root.attrs.put(dict(root.attrs))  # rewritten without the consolidated copy it was opened without
    except StoreFault:
        pass  # the root's own zarr.json: verify rewrites it


def is_consolidated(zstore: ZarrStore) -> bool:
    """Whether the root's consolidated metadata says what every ``zarr.json`` says now (not at all when another writer
    has just rewritten the root's ``zarr.json`` without it, e.g. a rank opening the same new store)."""
    try:
        held = _consolidated(zstore)
    except ValueError:  # zarr: "Consolidated metadata requested ... but not found"
        return False
    return held == _listed(zstore)


def vanished(zstore: ZarrStore) -> list[str]:
    """The groups and arrays the root's consolidated metadata lists that are no longer there (the outermost of
    each: plain xarray would open them and find their chunks gone); none when it holds no copy."""
    try:
        held = _consolidated(zstore)
    except (ValueError, StoreFault):
        return []
    gone = sorted(set(held) - set(_listed(zstore)))
    return [path for path in gone if not any(path.startswith(other + "/") for other in gone)]


def _plain(metadata: Metadata) -> dict[str, Any]:
    return {k: v for k, v in metadata.to_dict().items() if k != "consolidated_metadata"}


def _consolidated(zstore: ZarrStore) -> dict[str, dict[str, Any]]:
    """The metadata the root's consolidated copy holds, by path."""
    root = zarr.open_group(zstore, mode="r", use_consolidated=True, zarr_format=3)
    held = root.metadata.consolidated_metadata
    assert held is not None  # use_consolidated=True: zarr raises ValueError where the root holds none
    return {path: _plain(meta) for path, meta in held.flattened_metadata.items()}


def _listed(zstore: ZarrStore) -> dict[str, dict[str, Any]]:
    """The metadata of every group and array as each ``zarr.json`` says now, by path."""
    root = zarr.open_group(zstore, mode="r", use_consolidated=False, zarr_format=3)
    return {path: _plain(node.metadata) for path, node in root.members(max_depth=None)}
