"""zarr's two object-store layers against the S3 API on localhost: FsspecStore (s3fs) vs ObjectStore (obstore).

Writes then reads back ~300 MB of float16 activations in actstore's chunk shape (32 examples × 100 tokens × 1536
neurons, 9.8 MB, CRC32C) through each, three rounds, the median printed. It chose the layer actstore uses.
Needs obstore, which actstore does not install: pip install -c constraints.txt obstore
Usage: python benchmarks/object_stores.py [--chunks 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import zarr
from bench import s3_on_localhost
from zarr.codecs import Crc32cCodec

from actstore.store.backends import open_backend


def fsspec_store(url: str) -> zarr.abc.store.Store:
    """As actstore opens it (its options, its session closed at exit)."""
    backend = open_backend(url)
    backend.exists()
    return backend.zarr_store(read_only=False)


def obstore_store(url: str) -> zarr.abc.store.Store:
    from obstore.store import S3Store

    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return zarr.storage.ObjectStore(
        S3Store(bucket, prefix=prefix, endpoint=os.environ["AWS_ENDPOINT_URL"], client_options={"allow_http": True})
    )


def round_trip(store: zarr.abc.store.Store, reopen: zarr.abc.store.Store, data: np.ndarray) -> tuple[float, float]:
    """Seconds to write every chunk (one assignment each, as the extraction writer does), then to read all back."""
    array = zarr.create_array(
        store,
        shape=data.shape,
        chunks=(1, *data.shape[1:]),
        dtype=data.dtype,
        compressors=[Crc32cCodec()],
        overwrite=True,
    )
    start = time.perf_counter()
    for i in range(len(data)):
        array[i] = data[i]
    written = time.perf_counter() - start
    start = time.perf_counter()
    back = zarr.open_array(reopen, mode="r")[...]
    read = time.perf_counter() - start
    assert back.tobytes() == data.tobytes()
    return written, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = np.random.default_rng(0).standard_normal((args.chunks, 32, 100, 1536)).astype(np.float16)
    mb = data.nbytes / 1e6
    times: dict[str, list[tuple[float, float]]] = {"FsspecStore": [], "ObjectStore": []}
    with s3_on_localhost() as bucket:
        for r in range(args.rounds):
            for name, make in (("FsspecStore", fsspec_store), ("ObjectStore", obstore_store)):
                url = f"{bucket}/{name}-{r}"
                times[name].append(round_trip(make(url), make(url), data))
    for name, rounds in times.items():
        write, read = (statistics.median(t[i] for t in rounds) for i in (0, 1))
        print(
            f"{name}: write {mb / write:.0f} MB/s, read {mb / read:.0f} MB/s (median of {args.rounds}, {mb:.0f} MB; "
            f"writes {', '.join(f'{mb / t[0]:.0f}' for t in rounds)}; "
            f"reads {', '.join(f'{mb / t[1]:.0f}' for t in rounds)})"
        )


if __name__ == "__main__":
    main()
