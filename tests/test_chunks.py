"""``ChunkReader``: whole chunks read in the caller's thread are the values zarr reads, and a fault is an error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.storage import LocalStore

from actstore.errors import StoreFault
from actstore.store import ChunkReader
from actstore.store.integrity import CHECKSUM, StrictStore

SHAPE, CHUNKS = (2, 70, 3, 5, 8), (1, 32, 1, 5, 8)  # 70 examples: the last chunk of each row is an edge chunk
GRID = [(s, b, layer, 0, 0) for s in range(2) for b in range(3) for layer in range(3)]


def stored(path: Path, dtype: str, **codecs: object) -> zarr.Array:
    values = np.random.default_rng(0).normal(size=SHAPE) * 100
    array = zarr.create_array(
        LocalStore(path), name="a", shape=SHAPE, chunks=CHUNKS, dtype=dtype, **({"compressors": CHECKSUM} | codecs)
    )
    array[...] = values.astype(dtype)
    return zarr.open_array(StrictStore(LocalStore(path)), path="a", mode="r")


def selection(coords: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(coords, CHUNKS, SHAPE))


@pytest.mark.parametrize(
    ("dtype", "codecs"),
    [
        ("float16", {}),
        ("uint8", {}),
        ("float32", {}),
        ("float16", {"serializer": BytesCodec(endian="big")}),
        ("float16", {"compressors": [ZstdCodec(), *CHECKSUM]}),  # not raw bytes: read through zarr
    ],
    ids=["float16", "uint8", "float32", "big-endian", "compressed"],
)
def test_the_chunks_are_what_zarr_reads(tmp_path, dtype, codecs):
    array = stored(tmp_path, dtype, **codecs)
    chunks = ChunkReader(array).read(GRID)
    assert [c.shape for c in chunks] == [array[selection(g)].shape for g in GRID]  # edge chunks cut to the extent
    for got, coords in zip(chunks, GRID):
        np.testing.assert_array_equal(got, array[selection(coords)], err_msg=str(coords))
    edge = chunks[GRID.index((0, 2, 0, 0, 0))]
    assert edge.shape[1] == 70 - 64 and edge.dtype == np.dtype(dtype)


@pytest.mark.parametrize(("fault", "kind"), [("flip", "damaged"), ("truncate", "damaged"), ("delete", "missing")])
def test_a_damaged_or_missing_chunk_is_a_store_fault(tmp_path, fault, kind):
    array = stored(tmp_path, "uint8")
    chunk = tmp_path / "a" / "c" / "1" / "2" / "0" / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    if fault == "flip":
        raw[100] ^= 1
        chunk.write_bytes(bytes(raw))
    elif fault == "truncate":
        chunk.write_bytes(bytes(raw[:-10]))
    else:
        chunk.unlink()
    reader = ChunkReader(array)
    assert len(reader.read([(1, 1, 0, 0, 0)])) == 1  # the other chunks still read
    with pytest.raises(StoreFault) as raised:
        reader.read([(1, 1, 0, 0, 0), (1, 2, 0, 0, 0)])
    assert raised.value.problem == kind and "actstore verify" in str(raised.value)


def test_a_stream_yields_each_group_in_order_and_stops_at_a_fault(tmp_path):
    array = stored(tmp_path, "float16")
    reader = ChunkReader(array)
    groups = [GRID[i : i + 4] for i in range(0, len(GRID), 4)]
    streamed = list(reader.stream(groups))
    assert [len(g) for g in streamed] == [len(g) for g in groups]
    for got, group in zip(streamed, groups):
        for chunk, coords in zip(got, group):
            np.testing.assert_array_equal(chunk, array[selection(coords)])
    (tmp_path / "a" / "c" / "0" / "1" / "1" / "0" / "0").unlink()  # in the second group (GRID[4])
    stream = reader.stream(groups)
    assert len(next(stream)) == 4
    with pytest.raises(StoreFault):
        next(stream)
