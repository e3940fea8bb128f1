"""Faults are errors, never data: what every read of a store goes through.

Zarr reads a missing chunk as its fill value and a missing or broken ``zarr.json`` as a bare exception, so a
deleted file would silently become zeros. actstore closes those holes in three places:

- ``StrictStore`` wraps the store zarr reads from: a chunk key that is not there (outside ``OPTIONAL_CHUNKS``)
  and a ``zarr.json`` that does not parse raise ``StoreFault``;
- every array carries a CRC32C (``CHECKSUM``), and the codec that checks it raises ``StoreFault`` too, so
  dask, xarray and actstore's own readers all stop on a damaged chunk;
- every group's attributes and its arrays' metadata carry a digest (``seal``/``check_seal``), so an edited
  dtype or a flipped byte in a spec is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

import zarr
from zarr.abc.store import ByteRequest
from zarr.codecs import Crc32cCodec
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.registry import register_codec
from zarr.storage import WrapperStore

from ..errors import StoreFault

#: arrays whose chunks may legitimately be absent: a block's (a segment's) marker exists only once it is stored
OPTIONAL_CHUNKS = frozenset({"done", "segment_done"})
_CHUNK_KEY = re.compile(r"(?:^|/)c(?:/\d+)*$")  # zarr v3's default chunk key encoding: <array>/c/0/1/...
_HINT = "run actstore verify on the store to list the damage (--repair to mark what can be recomputed)"


class CheckedCrc32c(Crc32cCodec):
    """zarr's CRC32C codec, failing with a ``StoreFault`` instead of a bare ValueError (or an IndexError when a
    chunk was truncated below its 4-byte checksum)."""

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: object) -> Buffer:
        if len(chunk_bytes) < 4:
            raise StoreFault(f"a stored chunk is truncated ({len(chunk_bytes)} bytes): {_HINT}")
        try:
            return super()._decode_sync(chunk_bytes, chunk_spec)
        except ValueError:
            raise StoreFault(f"a stored chunk fails its CRC32C checksum (damaged data): {_HINT}") from None


#: every array of a store is written with it; written as plain zarr "crc32c", readable by any zarr
CHECKSUM = [Crc32cCodec()]

register_codec("crc32c", CheckedCrc32c)
# write_empty_chunks: a chunk equal to the fill value (a block of all-zero ReLU activations) is still written,
# so that a missing chunk always means damage
zarr.config.set({"codecs.crc32c": f"{CheckedCrc32c.__module__}.{CheckedCrc32c.__qualname__}",
                 "array.write_empty_chunks": True})


def usable_metadata(raw: bytes) -> bool:
    """Whether a ``zarr.json`` parses, and an array's as zarr metadata too: an edited dtype can contradict its fill
    value (NaN for an integer), which zarr would raise a bare TypeError on."""
    try:
        meta = json.loads(raw)
        if isinstance(meta, dict) and meta.get("node_type") == "array":
            ArrayV3Metadata.from_dict(dict(meta))
    except (ValueError, TypeError, KeyError):
        return False
    return isinstance(meta, dict)


def is_chunk_key(key: str) -> bool:
    return bool(_CHUNK_KEY.search(key))


def array_of(key: str) -> str:
    """The array path of a chunk key: ``a/b/acts/c/0/1`` → ``a/b/acts``."""
    return key[: _CHUNK_KEY.search(key).start()]


class StrictStore(WrapperStore):
    """Reads through another zarr store, raising ``StoreFault`` where zarr would make up data."""

    def __init__(self, store: zarr.abc.store.Store, where: str = "") -> None:
        super().__init__(store)
        self.where = where or str(store)
        #: whether this process holds the store's writer lock alone (``Store.writing``: exclusive, on a disk), so
        #: that no other writer can change it meanwhile
        self.sole_writer = False

    def _with_store(self, store: zarr.abc.store.Store) -> "StrictStore":
        return type(self)(store, self.where)

    def _check(self, key: str, value: Buffer | None) -> None:
        if value is None:
            if is_chunk_key(key) and array_of(key).rpartition("/")[2] not in OPTIONAL_CHUNKS:
                raise StoreFault(f"chunk {key} is missing from {self.where}: {_HINT}")
        elif key.endswith("zarr.json") and not usable_metadata(value.to_bytes()):
            raise StoreFault(f"{key} in {self.where} is damaged (not valid JSON, or not metadata zarr can read): "
                             f"{_HINT}")

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        value = await self._store.get(key, prototype, byte_range)
        self._check(key, value)
        return value

    async def get_partial_values(self, prototype: BufferPrototype,
                                 key_ranges: Iterable[tuple[str, ByteRequest | None]]) -> list[Buffer | None]:
        key_ranges = list(key_ranges)
        values = await self._store.get_partial_values(prototype, key_ranges)
        for (key, _), value in zip(key_ranges, values):
            self._check(key, value)
        return values


# ---- digests of the metadata

SEAL = "integrity"


def _digest(value: object) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def metadata_of(array: zarr.Array) -> dict:
    """An array's metadata (shape, dtype, chunks, codecs, ...) as stored, without its free-form attributes."""
    return {k: v for k, v in array.metadata.to_dict().items() if k != "attributes"}


def array_metadata(group: zarr.Group) -> dict[str, dict]:
    return {name: metadata_of(array) for name, array in group.arrays()}


def seal(group: zarr.Group, attrs: dict) -> dict:
    """``attrs`` with digests of themselves and of the group's arrays' metadata; write it after the arrays."""
    return sealed(attrs, array_metadata(group))


def sealed(attrs: dict, arrays: dict[str, dict]) -> dict:
    """``attrs`` with digests of themselves and of ``arrays`` (name → ``metadata_of``): ``seal`` for arrays as they
    will be, which an upgrade writes before it changes them (``migrate``)."""
    body = {k: v for k, v in attrs.items() if k != SEAL}
    return {**body, SEAL: {"attrs": _digest(body), "arrays": _digest(arrays)}}


def seal_matches(attrs: dict, arrays: dict[str, dict]) -> bool:
    """Whether ``attrs`` carry the digests of themselves and of ``arrays``."""
    return attrs.get(SEAL) == sealed(attrs, arrays)[SEAL]


def seal_problems(group: zarr.Group) -> list[str]:
    """What does not match the group's digests ("attributes", "array metadata"); a group written before
    digests existed has none to check."""
    attrs = dict(group.attrs)
    stored = attrs.get(SEAL)
    if stored is None:
        return []
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
        raise StoreFault(f"the {' and '.join(problems)} of {where} do not match their digest (edited or damaged): {_HINT}")
