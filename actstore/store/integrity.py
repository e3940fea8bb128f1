"""Faults are errors, never data: what every read of a store goes through.

Zarr reads a missing chunk as its fill value and a missing or broken ``zarr.json`` as a bare exception, so a
deleted file would silently become zeros. actstore closes those holes in three places:

- ``StrictStore`` wraps the store zarr reads from: a chunk key that is not there (outside ``OPTIONAL_CHUNKS``)
  and a ``zarr.json`` that does not parse raise ``StoreFault``;
- every array carries a CRC32C (``CHECKSUM``), and the codec that checks it raises ``StoreFault`` too, so
  dask, xarray and actstore's own readers all stop on a damaged chunk;
- a CRC32C protects a chunk's bytes, not its address: two valid chunks exchanged, or an older version of one, would
  pass. So, as ZFS's block pointers do, the metadata that points to a chunk holds its checksum too (``ledger``): a
  chunk whose CRC32C is not the one recorded for its key raises ``StoreFault`` ("misplaced");
- every group's attributes and its arrays' metadata carry a digest (``seal``/``check_seal``), so an edited
  dtype or a flipped byte in a spec is refused.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import Any, Protocol

import google_crc32c
import numpy as np
import zarr
from zarr.abc.store import ByteRequest, Store as ZarrStore, SuffixByteRequest
from zarr.codecs import Crc32cCodec
from zarr.core.array_spec import ArrayConfigParams, ArraySpec
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.core.common import JSON
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.core.sync import sync
from zarr.registry import register_codec
from zarr.storage import WrapperStore

from ..errors import StoreFault
from .members import array_in

#: the arrays in which an extraction's units record their chunks' CRC32Cs (``ledger``)
MANIFESTS = frozenset({"block_crc", "segment_crc", "baseline_crc"})
#: arrays whose chunks may legitimately be absent: a block's (a segment's) marker and manifest exist only once it
#: is stored
OPTIONAL_CHUNKS = frozenset({"done", "segment_done"}) | MANIFESTS
_CHUNK_KEY = re.compile(r"(?:^|/)c(?:/\d+)*$")  # zarr v3's default chunk key encoding: <array>/c/0/1/...
HINT = "run actstore verify on the store to list the damage (--repair to mark what can be recomputed)"


class CheckedCrc32c(Crc32cCodec):
    """zarr's CRC32C codec, failing with a ``StoreFault`` instead of a bare ValueError (or an IndexError when a
    chunk was truncated below its 4-byte checksum). Written as plain ``crc32c``; only ``StrictStore`` reads it back
    as this class (``CHECKED``), so that nobody else's crc32c arrays change."""

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> CheckedCrc32c:
        if data.get("name") not in (CHECKED, "crc32c"):
            raise ValueError(f"not a {CHECKED} codec: {data}")
        return cls()

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        return chunk_spec.prototype.buffer.from_array_like(verified_body(chunk_bytes.as_numpy_array()))


def verified_body(chunk: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A stored chunk's bytes without the CRC32C it ends with, after checking them against it: a ``StoreFault``
    (damaged) where the chunk is truncated below its checksum or fails it. Every read of a chunk checks it here,
    zarr's (``CheckedCrc32c``) and a kernel's (``chunks.ChunkReader``)."""
    if chunk.size < 4:
        raise StoreFault(f"a stored chunk is truncated ({chunk.size} bytes): {HINT}", "damaged")
    body = chunk[:-4]
    if google_crc32c.value(body) != int.from_bytes(bytes(chunk[-4:]), "little"):
        raise StoreFault(f"a stored chunk fails its CRC32C checksum (damaged data): {HINT}", "damaged")
    return body


def trailer(chunk: bytes | Buffer) -> int:
    """The CRC32C a chunk written with ``CHECKSUM`` ends with (its codec appends it, little-endian)."""
    tail = chunk.as_numpy_array()[-4:] if isinstance(chunk, Buffer) else chunk[-4:]  # a view: chunks are MBs
    return int.from_bytes(bytes(tail), "little")


#: the name ``StrictStore`` gives the stored ``crc32c`` codec when it reads an array's metadata: a name of actstore's
#: own in zarr's codec registry, so that registering it changes no other array (zarr's "crc32c" stays zarr's)
CHECKED = "actstore.crc32c"
register_codec(CHECKED, CheckedCrc32c)

#: every array of a store is written with it; written as plain zarr "crc32c", readable by any zarr
CHECKSUM = [CheckedCrc32c()]

#: zarr's runtime setting for every array actstore writes: a chunk equal to the fill value (a block of all-zero ReLU
#: activations, a marker not set) is still written, so that a missing chunk always means damage. Given to each array
#: as it is written (``writable``), never set for the process.
WRITE_EVERY_CHUNK: ArrayConfigParams = {"write_empty_chunks": True}


def writable(array: zarr.Array[Any]) -> zarr.Array[Any]:
    """``array`` as actstore writes it: every chunk stored, empty or not (``WRITE_EVERY_CHUNK``)."""
    return array.with_config(WRITE_EVERY_CHUNK)


def _checked(doc: object) -> bool:
    """Rename, in a parsed ``zarr.json`` (an array's, a sharding codec's, a consolidated listing), every ``crc32c``
    codec to ``CHECKED``; whether any was found."""
    found = False
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("codecs", "index_codecs") and isinstance(value, list):
                for codec in value:
                    if isinstance(codec, dict) and codec.get("name") == "crc32c":
                        codec["name"], found = CHECKED, True
            found |= _checked(value)
    elif isinstance(doc, list):
        for item in doc:
            found |= _checked(item)
    return found


def _parsed(raw: bytes) -> dict[str, Any] | None:
    """A ``zarr.json`` parsed, None where it does not parse or an array's is not metadata zarr can read: an edited
    dtype can contradict its fill value (NaN for an integer), which zarr would raise a bare TypeError on."""
    try:
        meta = json.loads(raw)
        if isinstance(meta, dict) and meta.get("node_type") == "array":
            ArrayV3Metadata.from_dict(dict(meta))
    except (ValueError, TypeError, KeyError):
        return None
    return meta if isinstance(meta, dict) else None


def usable_metadata(raw: bytes) -> bool:
    """Whether a ``zarr.json`` parses, and an array's as zarr metadata too (``_parsed``)."""
    return _parsed(raw) is not None


def checked_metadata(value: Buffer, prototype: BufferPrototype | None) -> Buffer | None:
    """A ``zarr.json`` as ``StrictStore`` hands it to zarr, parsed once: None where it is not usable
    (``usable_metadata``), else with its crc32c codecs read as ``CheckedCrc32c``, in a buffer of ``prototype``
    (None: checked only, handed on as read, e.g. a byte range of it)."""
    raw = value.to_bytes()
    doc = _parsed(raw)
    if doc is None:
        return None
    if prototype is None or b'"crc32c"' not in raw:
        return value
    return prototype.buffer.from_bytes(json.dumps(doc).encode()) if _checked(doc) else value


def is_chunk_key(key: str) -> bool:
    return bool(_CHUNK_KEY.search(key))


def _chunk_part(key: str) -> int:
    """Where the chunk part of a chunk key begins (``is_chunk_key`` first: any other key is a ValueError)."""
    found = _CHUNK_KEY.search(key)
    if found is None:
        raise ValueError(f"{key} is not a chunk key")
    return found.start()


def array_of(key: str) -> str:
    """The array path of a chunk key: ``a/b/acts/c/0/1`` → ``a/b/acts``."""
    return key[: _chunk_part(key)]


def chunk_coords(key: str) -> tuple[int, ...]:
    """The grid coordinates of a chunk key: ``a/b/acts/c/0/1`` → ``(0, 1)``."""
    return tuple(int(part) for part in key[_chunk_part(key) :].split("/")[2:])


class Ledger(Protocol):
    """Where the checksum recorded for a chunk's key is found (``ledger.Ledger``): its metadata, not the chunk."""

    async def expected(self, key: str, store: ZarrStore) -> int | None:
        """The CRC32C recorded for ``key`` (None: nothing binds it, e.g. a group from before manifests); reads
        what it needs from ``store``, raising ``StoreFault`` where the record itself is lost or damaged."""

    def forget(self, key: str) -> None:
        """``key`` was written or removed: drop what was cached from it."""


class StrictStore(WrapperStore[Any]):
    """Reads through another zarr store, raising ``StoreFault`` where zarr would make up data: a chunk missing, a
    ``zarr.json`` broken, or a chunk that is not the one recorded for its key (``ledger``). Remembers the checksum of
    every chunk it writes, for the writer to record (``take``).

    Wraps any ``ZarrStore``, but types it ``Any``: ``migrate._nodes`` reads ``_store`` unchecked and does not yet
    handle a key removed between its listing and its read (``get`` returns ``Buffer | None``)."""

    def __init__(self, store: ZarrStore, where: str = "", ledger: Ledger | None = None) -> None:
        super().__init__(store)
        self.where = where or str(store)
        self.ledger = ledger
        #: whether this process holds the store's writer lock alone (``Store.writing``: exclusive, on a disk), so
        #: that no other writer can change it meanwhile
        self.sole_writer = False
        #: chunk key → (CRC32C, writes not yet taken): what this process wrote, until a manifest or seal records it
        self._written: dict[str, tuple[int, int]] = {}
        self._taking = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for dask workers (a cluster): what this process wrote stays its own; a lock cannot travel."""
        return {**self.__dict__, "_written": {}, "_taking": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _taking=threading.Lock())

    def _with_store(self, store: ZarrStore) -> StrictStore:
        return type(self)(store, self.where, self.ledger)

    def _check(self, key: str, value: Buffer | None, prototype: BufferPrototype | None = None) -> Buffer | None:
        """``value`` as zarr is to read it (``checked_metadata`` for a ``zarr.json`` read whole with ``prototype``),
        or ``StoreFault`` where a chunk is missing or a ``zarr.json`` damaged."""
        if value is None:
            if is_chunk_key(key) and array_of(key).rpartition("/")[2] not in OPTIONAL_CHUNKS:
                raise StoreFault(f"chunk {key} is missing from {self.where}: {HINT}", "missing")
            return None
        if not key.endswith("zarr.json"):
            return value
        checked = checked_metadata(value, prototype)
        if checked is None:
            raise StoreFault(
                f"{key} in {self.where} is damaged (not valid JSON, or not metadata zarr can read): {HINT}", "damaged"
            )
        return checked

    async def _check_address(self, key: str, value: Buffer | None) -> None:
        """A chunk read whole must be the one recorded for its key (a damaged one is left to its codec to say)."""
        if value is None or self.ledger is None or not is_chunk_key(key) or len(value) < 4:
            return
        want = await self.ledger.expected(key, self._store)
        if want is not None and trailer(value) != want:
            raise StoreFault(
                f"chunk {key} of {self.where} holds other data than was written there (exchanged, "
                f"duplicated or stale: its CRC32C is not the one recorded for it): {HINT}",
                "misplaced",
            )

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        stored: Buffer | None = await self._store.get(key, prototype, byte_range)
        value = self._check(key, stored, prototype if byte_range is None else None)
        if key.endswith("zarr.json"):
            if self.ledger is not None:
                self.ledger.forget(key)  # a node opened again: what it binds is read again
            return value
        if byte_range is None:
            await self._check_address(key, value)
        return value

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        for key, prototype, byte_range in requests:  # through ``get``: its checks are every read's
            yield key, await self.get(key, prototype, byte_range)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        key_ranges = list(key_ranges)
        values: list[Buffer | None] = await self._store.get_partial_values(prototype, key_ranges)
        for (key, whole), value in zip(key_ranges, values):
            self._check(key, value)
            if whole is None:
                await self._check_address(key, value)
        return values

    async def set(self, key: str, value: Buffer) -> None:
        await self._store.set(key, value)
        if is_chunk_key(key) and array_of(key).rpartition("/")[2] not in OPTIONAL_CHUNKS:  # markers bind nothing
            with self._taking:
                self._written[key] = (trailer(value), self._written.get(key, (0, 0))[1] + 1)
        if self.ledger is not None:
            self.ledger.forget(key)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        for key, value in values:  # zarr's create_hierarchy: each document through ``set``
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        await self._store.delete(key)
        if self.ledger is not None:
            self.ledger.forget(key)

    async def delete_dir(self, prefix: str) -> None:
        await self._store.delete_dir(prefix)
        if self.ledger is not None:
            self.ledger.forget(prefix)

    def take(self, keys: Iterable[str]) -> list[int | None]:
        """The CRC32C this process wrote at each key (None: it wrote none), each write taken once: what a manifest
        records is what was written, so a write the storage lost is caught when the chunk is read."""
        crcs: list[int | None] = []
        with self._taking:  # writer threads take while zarr's event loop records
            for key in keys:
                written = self._written.get(key)
                if written is None:
                    crcs.append(None)
                    continue
                crc, count = written
                if count > 1:
                    self._written[key] = (crc, count - 1)
                else:
                    del self._written[key]
                crcs.append(crc)
        return crcs


# ---- digests of the metadata

SEAL = "integrity"


def _digest(value: object) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def metadata_of(array: zarr.Array[Any]) -> dict[str, Any]:
    """An array's metadata (shape, dtype, chunks, codecs, ...) as stored, without its free-form attributes."""
    return {k: v for k, v in array.metadata.to_dict().items() if k != "attributes"}


def array_metadata(group: zarr.Group) -> dict[str, dict[str, Any]]:
    return {name: metadata_of(array) for name, array in group.arrays()}


def seal(group: zarr.Group, attrs: dict[str, Any], bound: Iterable[str] = ()) -> dict[str, Any]:
    """``attrs`` with digests of themselves and of the group's arrays' metadata, and the CRC32C of every chunk of
    the arrays ``bound`` (``chunk_crcs``); write it after the arrays."""
    done = sealed(attrs, array_metadata(group))
    chunks = chunk_crcs(group, bound, (attrs.get(SEAL) or {}).get("chunks", {}))
    return {**done, SEAL: {**done[SEAL], "chunks": chunks}} if chunks else done


def chunk_crcs(group: zarr.Group, names: Iterable[str], recorded: dict[str, int]) -> dict[str, int]:
    """The CRC32C of every chunk of the arrays ``names``, by key within the group: as this process wrote it (taken
    from ``StrictStore``), else as recorded before, else as stored (written by another process, e.g. the rank that
    created the group)."""
    found: dict[str, int | None] = {}
    for name in names:
        array = array_in(group, name)
        keys = [
            f"{name}/{array.metadata.encode_chunk_key(c)}"
            for c in itertools.product(*(range(-(-size // chunk)) for size, chunk in zip(array.shape, array.chunks)))
        ]
        taken = group.store.take(f"{group.path}/{k}" for k in keys) if isinstance(group.store, StrictStore) else []
        for key, crc in itertools.zip_longest(keys, taken):
            found[key] = crc if crc is not None else recorded.get(key)
            if found[key] is None:
                found[key] = stored_trailer(group.store, f"{group.path}/{key}")
    return {k: v for k, v in found.items() if v is not None}


def stored_trailer(zstore: ZarrStore, key: str) -> int | None:
    """The CRC32C a stored chunk ends with, read alone (None: no such chunk)."""
    stored = sync(zstore.get(key, default_buffer_prototype(), SuffixByteRequest(4)))
    return None if stored is None else trailer(stored)


def sealed(attrs: dict[str, Any], arrays: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``attrs`` with digests of themselves and of ``arrays`` (name → ``metadata_of``): ``seal`` for arrays as they
    will be, which an upgrade writes before it changes them (``migrate``)."""
    body = {k: v for k, v in attrs.items() if k != SEAL}
    return {**body, SEAL: {"attrs": _digest(body), "arrays": _digest(arrays)}}


def seal_matches(attrs: dict[str, Any], arrays: dict[str, dict[str, Any]]) -> bool:
    """Whether ``attrs`` carry the digests of themselves and of ``arrays``."""
    stored = attrs.get(SEAL) or {}
    want: dict[str, str] = sealed(attrs, arrays)[SEAL]
    return {k: stored.get(k) for k in ("attrs", "arrays")} == want


def seal_problems(group: zarr.Group) -> list[str]:
    """What does not match the group's digests ("attributes", "array metadata"); a group written before
    digests existed has none to check."""
    attrs = dict(group.attrs)
    stored = attrs.get(SEAL)
    if stored is None:
        return []
    if not isinstance(stored, Mapping):
        stored = {}  # a seal that is not a JSON object holds no digest: none matches
    body = {k: v for k, v in attrs.items() if k != SEAL}
    problems = []
    if stored.get("attrs") != _digest(body):
        problems.append("attributes")
    if stored.get("arrays") != _digest(array_metadata(group)):
        problems.append("array metadata")
    return problems


def check_seal(group: zarr.Group, where: str) -> None:
    problems = seal_problems(group)
    if problems:
        raise StoreFault(
            f"the {' and '.join(problems)} of {where} do not match their digest (edited or damaged): {HINT}"
        )
