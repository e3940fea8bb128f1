"""``actstore upgrade``: a store of schema version 2 made version 3 in place, so that plain xarray reads it as it is.

What changes (README, "The store"): the dimension and coordinate ``class`` becomes ``label_class`` and the
coordinate ``stack`` of rankings and results ``layer_stack`` (xarray's ``Dataset.stack`` and Python's ``class``
shadowed them), named in each data variable's ``coordinates`` attribute; every float array's fill value becomes NaN
(a block not extracted yet reads as NaN, not zeros); T5's decoder groups move from
``extractions/<task>/<split>/decoder`` to ``decoder_extractions/<task>/<split>`` (nested, they do not align with
their parent in an ``xr.DataTree``); the lock file leaves the store; the root ``zarr.json`` gets the consolidated
metadata of the whole hierarchy; the root's ``schema_version`` becomes 3 with an ``upgrading`` flag first, and the
flag goes last.

Chunk bytes stay as they are: a renamed array's (and a moved group's) chunks are copied under the new name, then the
old one is removed; everything else is metadata. It is crash-safe by order and idempotent, so running it again after
a kill finishes the job. While the root carries the ``upgrading`` flag, an actstore of either version refuses the
store (version 2 sees version 3; this one sees the flag): nothing reads a half-upgraded store as data. Per group:
first its attributes are resealed with the digest of its arrays' metadata *as they will be* (computed from the
metadata checked against the old digest), then the arrays are rewritten; a group caught in between matches neither
digest of the arrays it has, but the new one of what they become, which a second run recognises. A moved group gets
its attributes after its arrays are in place, and the old group is removed last. A group whose digests matched
neither before nor after (damage older than the upgrade) has its arrays renamed but keeps its old digest, so that
``actstore verify`` still reports it.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.core.sync import sync
from zarr.errors import ZarrUserWarning

from .. import __version__
from ..errors import ActstoreError
from .attrs import consolidate, now
from .backends import Backend, StoreLocation, open_backend
from .backends.local import LEGACY_LOCK
from .integrity import SEAL, StrictStore, seal_matches, sealed, usable_metadata
from .members import group_in, json_object
from .schema import SCHEMA_VERSION, UPGRADABLE

if TYPE_CHECKING:
    from zarr.abc.store import Store as ZarrStore

#: names of version 2 (arrays and dimensions) → version 3
RENAMED = {"class": "label_class", "stack": "layer_stack"}
#: the non-index coordinates actstore writes as arrays, named in the ``coordinates`` attribute of data variables
NON_INDEX_COORDS = ("layer_stack",)
_FLOATS = ("float16", "float32", "float64")


@dataclass(frozen=True)
class Upgraded:
    """One group the upgrade went through, and what it found."""

    group: str
    action: str  # upgraded (moved from ...) | damaged
    detail: str = ""


def upgrade_path(location: str | Path | StoreLocation | Backend) -> list[dict[str, Any]]:
    """Upgrade the store at ``location`` to schema version 3 (a store already there only gets its consolidated
    metadata rewritten); the groups it went through, as dicts of ``Upgraded``."""
    backend = open_backend(location)
    if not backend.exists():
        raise ActstoreError(f"no actstore store at {backend.url}")
    with backend.writer_lock(), warnings.catch_warnings():
        # zarr warns of a renamed array's chunks copied before a kill, under a name without its zarr.json yet
        warnings.filterwarnings("ignore", category=ZarrUserWarning)
        zstore = StrictStore(backend.zarr_store(read_only=False), backend.url)
        root = zarr.open_group(zstore, mode="r+", zarr_format=3, use_consolidated=False)
        meta = json_object(root, "actstore") if "actstore" in root.attrs else {}
        version = meta.get("schema_version")
        if version not in (UPGRADABLE, SCHEMA_VERSION):
            raise ActstoreError(
                f"{backend.url} uses store schema version {version}; actstore upgrade migrates version "
                f"{UPGRADABLE} only" + (": extract again into a new store" if version == 1 else "")
            )
        done = []
        if version == UPGRADABLE or meta.get("upgrading"):
            meta = {**meta, "schema_version": SCHEMA_VERSION, "upgrading": True}
            root.attrs.put({"actstore": meta})  # first: readers of either version refuse the store from here on
            nodes = _nodes(zstore)
            done = [
                Upgraded(
                    path,
                    "damaged",
                    "its zarr.json is unreadable (not JSON, or not zarr metadata): run actstore verify on the store",
                )
                for path, meta in nodes.items()
                if meta is None
            ]
            for path in sorted(p for p, meta in nodes.items() if p and meta and meta.get("node_type") == "group"):
                children = {p.rpartition("/")[2]: meta for p, meta in nodes.items() if p.rpartition("/")[0] == path}
                arrays = {name: meta for name, meta in children.items() if meta and meta.get("node_type") == "array"}
                if arrays:
                    done.append(_upgrade_group(zstore, root, path, arrays, intact=None not in children.values()))
            if sync(zstore.exists(LEGACY_LOCK)):  # a local store copied to object storage brought it along
                sync(zstore.delete(LEGACY_LOCK))
            meta = {k: v for k, v in meta.items() if k != "upgrading"}
            root.attrs.put({"actstore": {**meta, "version": __version__, "updated": now()}})  # last: now it reads
        consolidate(zstore)
    return [asdict(d) for d in done]


def _upgrade_group(
    zstore: ZarrStore, root: zarr.Group, path: str, current: dict[str, dict[str, Any]], intact: bool
) -> Upgraded:
    """One group made version 3 from its arrays' ``zarr.json`` (``current``; ``intact``: no member's is unreadable):
    its arrays renamed and rewritten, its digests resealed; a T5 decoder group moved out of its split's group
    (``_moved``)."""
    group, dest = group_in(root, path), _moved(path)
    target: dict[str, tuple[list[str], dict[str, Any]]] = {}  # new name → (its old names, its new metadata)
    for name, meta in current.items():
        new = RENAMED.get(name, name)
        target[new] = ([*target.get(new, ([], {}))[0], name], _upgraded(meta))
    _name_coordinates({name: meta for name, (_, meta) in target.items()})
    attrs = dict(group.attrs)
    new_meta = {name: _plain(meta) for name, (_, meta) in target.items()}
    sound = intact and (
        SEAL not in attrs
        or any(seal_matches(attrs, arrays) for arrays in ({n: _plain(m) for n, m in current.items()}, new_meta))
    )
    resealed = sealed(attrs, new_meta) if SEAL in attrs and sound else attrs
    if dest == path and resealed != attrs:
        group.attrs.put(resealed)  # first: the arrays below are then what the digest says
    for name, (old_names, meta) in target.items():
        for old in old_names:
            if (path, old) != (dest, name):
                _copy_chunks(zstore, f"{path}/{old}", f"{dest}/{name}")
        _put_json(zstore, f"{dest}/{name}/zarr.json", meta)
        for old in old_names if dest == path else ():
            if old != name:
                sync(zstore.delete_dir(f"{path}/{old}"))
    if dest != path:  # the moved group exists once its attributes are written, after its arrays; then the old goes
        root.require_group(dest).attrs.put(resealed)
        sync(zstore.delete_dir(path))
    if not sound:
        why = "its metadata did not match its digest" if intact else "the zarr.json of an array in it is unreadable"
        return Upgraded(
            dest,
            "damaged",
            f"{why} before the upgrade: run actstore verify on the store (--repair to mark what can be recomputed)",
        )
    return Upgraded(dest, "upgraded" if dest == path else f"upgraded, moved from {path}")


def _moved(path: str) -> str:
    """Where a group lives in version 3: T5's decoder group leaves ``extractions/<task>/<split>/decoder`` for
    ``decoder_extractions/<task>/<split>`` (a group inside the split's would not align with it in a DataTree)."""
    found = re.fullmatch(r"extractions/([^/]+)/([^/]+)/decoder", path)
    return f"decoder_extractions/{found.group(1)}/{found.group(2)}" if found else path


def _name_coordinates(arrays: dict[str, dict[str, Any]]) -> None:
    """Name the non-index coordinates in the ``coordinates`` attribute of each data variable along them (as
    ``Store._put_dataset`` writes it)."""
    coords = [c for c in NON_INDEX_COORDS if c in arrays]
    dims = {d for meta in arrays.values() for d in meta["dimension_names"] or ()}
    for name, meta in arrays.items():
        along = [
            c
            for c in coords
            if name not in dims
            and name != c
            and set(arrays[c]["dimension_names"]) <= set(meta["dimension_names"] or ())
        ]
        if along:
            meta["attributes"] = {**meta.get("attributes", {}), "coordinates": " ".join(along)}


def _upgraded(meta: dict[str, Any]) -> dict[str, Any]:
    """An array's version 3 metadata (``zarr.json``) from its version 2 (or already version 3) metadata."""
    meta = json.loads(json.dumps(meta))
    meta["dimension_names"] = [RENAMED.get(d, d) for d in meta.get("dimension_names") or []] or None
    if meta.get("data_type") in _FLOATS:
        meta["fill_value"] = "NaN"
    return meta


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    """``integrity.metadata_of`` of an array with this ``zarr.json``: what its digest covers."""
    parsed = ArrayV3Metadata.from_dict({k: v for k, v in meta.items() if k != "attributes"})
    return {k: v for k, v in parsed.to_dict().items() if k != "attributes"}


def _nodes(zstore: StrictStore) -> dict[str, dict[str, Any] | None]:
    """Every node of the hierarchy by path, from the key listing: its ``zarr.json``, or None where that does not parse
    (damage older than the upgrade: reported, left for ``actstore verify``)."""

    async def keys() -> list[str]:
        return [key async for key in zstore.list() if key == "zarr.json" or key.endswith("/zarr.json")]

    nodes = {}
    for key in sync(keys()):
        stored = sync(zstore._store.get(key, default_buffer_prototype()))  # unchecked: damage is reported
        if stored is None:  # removed since it was listed: no node any more
            continue
        raw = stored.to_bytes()
        nodes[key[: -len("zarr.json")].rstrip("/")] = json.loads(raw) if usable_metadata(raw) else None
    return nodes


def _put_json(zstore: ZarrStore, key: str, meta: dict[str, Any]) -> None:
    """Write a ``zarr.json`` whole (a rename on a disk, one PUT on object storage), unless it already says that."""
    value = json.dumps(meta, indent=2).encode()
    old = sync(zstore.get(key, default_buffer_prototype())) if sync(zstore.exists(key)) else None
    if old is None or json.loads(old.to_bytes()) != meta:
        sync(zstore.set(key, default_buffer_prototype().buffer.from_bytes(value)))


def _copy_chunks(zstore: ZarrStore, source: str, dest: str) -> None:
    """Every chunk of array ``source`` under ``dest`` (its ``zarr.json`` is written after them, by the caller)."""

    async def keys() -> list[str]:
        return [k async for k in zstore.list_prefix(source + "/")]

    for key in sync(keys()):
        if key.endswith("zarr.json"):
            continue
        value = sync(zstore.get(key, default_buffer_prototype()))
        # None only for a key removed since it was listed (StrictStore raises for a missing chunk): left as it was
        sync(zstore.set(dest + key[len(source) :], value))  # type: ignore[arg-type]
