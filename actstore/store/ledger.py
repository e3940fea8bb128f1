"""Where each chunk's checksum is recorded, apart from the chunk: what binds a chunk to its address.

A CRC32C at the end of a chunk says its bytes are intact, not that they belong at its key: two valid chunks
exchanged, one copied over another, or an older version left by a lost write all pass it. So the metadata that
points to a chunk records its CRC32C too, written by the writer from what it wrote (``StrictStore.take``), never
read back from storage:

- an extraction's units (a block of examples, a train segment, a seed's baseline) record the CRC32C of every chunk
  they write in a manifest chunk of their own (``layout.MANIFESTS``), made durable with the chunks and before the
  unit's done marker;
- everything written whole (an extraction's coordinates, labels, row ids and texts; prompts, rankings, results)
  has its chunks' CRC32Cs in its group's seal (``integrity.seal``, ``chunks``).

``StrictStore`` asks the ``Ledger`` for the recorded CRC32C of every chunk it reads whole and refuses one that
differs. Groups written before manifests (``ExtractionSpec.manifests`` false, a seal without ``chunks``) are checked
by their CRC32C alone, as before; ``actstore info`` says which.

Reading stays at its speed: the CRC32C compared is the one the chunk already ends with; a block's manifest is one
small read, cached for every chunk of the block.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import google_crc32c
import numpy as np
from zarr.core.buffer import default_buffer_prototype

from ..errors import StoreFault
from ..specs import ExtractionSpec, from_attrs
from .integrity import HINT, SEAL, array_of, chunk_coords, trailer
from .layout import recorded_at
from .paths import EXTRACTION_ROOTS

if TYPE_CHECKING:
    from zarr.abc.store import Store as ZarrStore


class _Group:
    """What a group's ``zarr.json`` says binds its chunks: its seal's CRC32Cs, and an extraction's spec."""

    def __init__(self, attrs: dict[str, Any], extraction: bool) -> None:
        self.sealed: dict[str, int] = dict(attrs.get(SEAL, {}).get("chunks", {}))
        self.spec: ExtractionSpec | None = None
        try:
            spec = from_attrs(ExtractionSpec, attrs["spec"]) if extraction else None
            self.spec = spec if spec is not None and spec.manifests else None
        except (KeyError, TypeError, ValueError):
            pass  # a spec verify reports as damaged: nothing is bound by manifests


class Ledger:
    """The recorded CRC32C of a chunk key, from its group's seal or its unit's manifest; both cached until
    ``StrictStore`` writes or removes what they came from."""

    def __init__(self) -> None:
        self._groups: dict[str, _Group | None] = {}
        self._manifests: dict[str, np.ndarray[Any, Any]] = {}

    async def expected(self, key: str, store: ZarrStore) -> int | None:
        path, _, name = array_of(key).rpartition("/")
        group = await self._group(path, store)
        if group is None:
            return None
        relative = key[len(path) + 1 :]
        if relative in group.sealed:
            return int(group.sealed[relative])
        if group.spec is None:
            return None
        places = recorded_at(group.spec, name, chunk_coords(key))
        for manifest, coords, slot in places:
            crcs = await self._manifest(f"{path}/{manifest}/c/" + "/".join(map(str, coords)), store)
            if crcs is not None:
                return int(crcs[slot])
        if places:
            raise StoreFault(
                f"chunk {key} has no manifest recording its checksum (lost, or its block was marked done "
                f"without one): {HINT}",
                "missing",
            )
        return None

    async def _group(self, path: str, store: ZarrStore) -> _Group | None:
        if path not in self._groups:
            raw = await store.get(f"{path}/zarr.json", default_buffer_prototype())
            try:
                attrs = json.loads(raw.to_bytes()).get("attributes", {}) if raw is not None else None
            except ValueError:
                attrs = None  # a damaged zarr.json: StrictStore says so where it is read
            self._groups[path] = _Group(attrs, path.startswith(EXTRACTION_ROOTS)) if isinstance(attrs, dict) else None
        return self._groups[path]

    async def _manifest(self, key: str, store: ZarrStore) -> np.ndarray[Any, Any] | None:
        if key not in self._manifests:
            raw = await store.get(key, default_buffer_prototype())
            if raw is None:
                return None
            data = raw.to_bytes()
            if len(data) < 4 or google_crc32c.value(data[:-4]) != trailer(data):
                raise StoreFault(f"the manifest {key} is damaged (fails its CRC32C): {HINT}", "damaged")
            self._manifests[key] = np.frombuffer(data[:-4], "<u4")
        return self._manifests[key]

    def forget(self, key: str) -> None:
        """Drop what was cached from ``key`` or under it: a manifest chunk written, a prefix removed, or a node's
        ``zarr.json`` written or read again (opening a group again sees what this or another process rewrote
        meanwhile: its seal and its units' manifests)."""
        self._manifests.pop(key, None)
        if key.rpartition("/")[2].isdigit():
            return  # a chunk
        node = key.removesuffix("zarr.json").rstrip("/")
        for cached in (self._groups, self._manifests):
            for k in [k for k in cached if k == node or k.startswith(node + "/") or not node]:
                del cached[k]
