"""Whole chunks for a kernel, read at the disk's speed: fetched together, decoded in the reader's own thread.

zarr decodes every chunk on its one event-loop thread and copies it into the selection asked for: about 1 ms per
chunk here, whatever its size, so the bits (a 16th of the bytes of float16, in chunks of 0.6 MB) were ranked at a
fifth of the disk's speed. A kernel that wants whole chunks gets them here instead: the store is asked for all of a
task's chunk keys at once (``StrictStore.get``: a missing chunk, or one that is not the one recorded for its key,
is still a ``StoreFault``), and the caller's thread checks each chunk's CRC32C and views its bytes as an array, with
no copy. Arrays whose codecs are not exactly ``bytes`` + ``crc32c`` (compressed, sharded) are read through zarr.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec
from zarr.core.buffer import Buffer, default_buffer_prototype
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.core.sync import sync

from ..errors import StoreFault
from .integrity import HINT, verified_body

if TYPE_CHECKING:
    from zarr.abc.store import Store as ZarrStore


@dataclass(frozen=True, eq=False)
class ChunkReader:
    """The whole chunks of one array (picklable: a cluster's workers read their own)."""

    array: zarr.Array[Any]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def chunks(self) -> tuple[int, ...]:
        return tuple(self.array.chunks)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self.array.dtype)

    def read(self, coords: Sequence[tuple[int, ...]]) -> list[np.ndarray[Any, Any]]:
        """The chunks at grid positions ``coords``, each cut to the array's extent (an edge chunk is stored whole)."""
        stored = _stored_dtype(self.array)
        if stored is None:
            return [np.asarray(self.array[self._selection(c)]) for c in coords]
        store = self.array.store_path.store
        keys = [f"{self.array.path}/{self.array.metadata.encode_chunk_key(c)}" for c in coords]
        values = sync(_fetch(store, keys))
        return [self._decode(key, value, stored)[self._within(c)] for key, value, c in zip(keys, values, coords)]

    def stream(self, groups: Iterable[Sequence[tuple[int, ...]]]) -> Iterator[list[np.ndarray[Any, Any]]]:
        """``read`` of each group of chunk positions in turn, the next group read while the caller counts this one:
        a task (a cluster worker's one thread, too) keeps the disk busy during its kernel, with at most two groups
        held."""
        with ThreadPoolExecutor(1) as ahead:
            pending: Future[list[np.ndarray[Any, Any]]] | None = None
            for group in groups:
                following = ahead.submit(self.read, group)
                if pending is not None:
                    yield pending.result()
                pending = following
            if pending is not None:
                yield pending.result()

    def _decode(self, key: str, value: Buffer | None, stored: np.dtype[Any]) -> np.ndarray[Any, Any]:
        """A stored chunk's bytes as its array, after its CRC32C: what zarr's codecs do, in this thread."""
        if value is None:  # a plain store says nothing of a lost chunk; StrictStore raises before this
            raise StoreFault(f"chunk {key} is missing: {HINT}", "missing")
        raw = value.as_numpy_array()
        if raw.size != int(np.prod(self.chunks)) * self.dtype.itemsize + 4:
            raise StoreFault(f"chunk {key} is truncated or too long ({raw.size} bytes): {HINT}", "damaged")
        values = verified_body(raw).view(stored).reshape(self.chunks)
        return values if values.dtype.isnative else values.astype(self.dtype)  # kernels read native bits

    def _selection(self, coords: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(
            slice(i * size, min((i + 1) * size, total)) for i, size, total in zip(coords, self.chunks, self.shape)
        )

    def _within(self, coords: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(slice(0, min(size, total - i * size)) for i, size, total in zip(coords, self.chunks, self.shape))


async def _fetch(store: ZarrStore, keys: Sequence[str]) -> list[Buffer | None]:
    prototype = default_buffer_prototype()
    return list(await asyncio.gather(*(store.get(key, prototype) for key in keys)))


def _stored_dtype(array: zarr.Array[Any]) -> np.dtype[Any] | None:
    """The dtype of a chunk's bytes where it is stored as its bytes and a CRC32C, nothing else (how actstore
    writes its arrays); None for any other encoding (compressed, sharded, zarr v2)."""
    meta = array.metadata
    if not isinstance(meta, ArrayV3Metadata) or not isinstance(meta.chunk_grid, RegularChunkGrid):
        return None
    codecs = meta.codecs
    if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec) or not isinstance(codecs[1], Crc32cCodec):
        return None
    if array.order != "C":
        return None
    dtype = np.dtype(array.dtype)
    endian = codecs[0].endian
    if dtype.itemsize == 1 or endian is None:
        return dtype
    return dtype.newbyteorder("<" if endian.value == "little" else ">")
