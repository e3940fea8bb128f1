"""rank on a store larger than RAM, against a plain read of the same chunk files (issue 21's figures).

The bench store (real MiniLM activations of SST-2's dev split, ``--keep both``; built as ``bench.py`` builds it, or
reused from ``<source>``) is repeated along ``example`` (``bench.synthetic_store``) until the store is at least
``--ram-factor`` times this machine's memory, so that no read can come from the page cache (a store kept by an
earlier ``--keep`` run is reused). Then, each from a
dropped cache and in turns (medians of ``bench.TRIALS``): a plain read of the float16 chunk files vs rank over
them, and a plain read of the bits' chunk files vs rank over the bits; rank in a fresh process warmed up on the
small store (imports and numba's cached kernels loaded), with its peak RSS. The large store is removed afterwards
unless ``--keep``.
Usage: python benchmarks/large.py [--out runs/bench-large] [--source runs/bench/rank.zarr] [--ram-factor 1.3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from pathlib import Path

from bench import (
    _MEASURED,
    MODEL,
    _in_fresh_process,
    bench_store,
    cold_read,
    disk_bytes,
    medians,
    synthetic_store,
    write_results,
)

from actstore.store import Store

#: rank in a fresh process: warmed up on the small store, then timed on the large one from a dropped cache
_LARGE_RANK = _MEASURED.format(
    setup="from actstore.store import Store\nfrom actstore.ranking import rank\n"
    "small, large = Store({small!r}, mode='a'), Store({large!r}, mode='a')",
    warm="with small.writing(): rank(small, 'sst2', read={read!r})",
    work="with large.writing(): rank(large, 'sst2', read={read!r})",
)


def memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def source_store(path: Path) -> Path:
    """The bench's store at ``path``, built there (872 examples, 100 prompt tokens) when it is not there yet."""
    if not (path / "extractions" / "sst2" / "validation").exists():
        import torch

        from actstore import tasks
        from actstore.extraction import ExtractOptions
        from actstore.models import load_model
        from actstore.prompts import PromptSet

        torch.set_num_threads(os.cpu_count() or 1)
        model = load_model(MODEL)
        dev = tasks.load_split("sst2", "validation").sample(872)
        train = tasks.load_split("sst2", "train").sample(64)
        prompts = PromptSet.random([0], 100, model.spec.hidden)
        bench_store(path, model, dev, train, prompts, ExtractOptions(batch_size=8, block=32))
    return path


def kept_store(source: Path, target: Path, factor: int) -> bool:
    """Whether ``target`` is a finished synthetic store of ``factor`` copies of ``source`` (one kept by ``--keep``)."""
    if not (target / "extractions" / "sst2" / "validation").exists():
        return False
    kept, spec = Store(target), Store(source).extraction_spec("sst2", "validation")
    held = kept.extraction_spec("sst2", "validation")
    return (
        spec is not None
        and held is not None
        and kept.complete("sst2", "validation")
        and held.data_fingerprint == f"synthetic x{factor}"
        and held.n_examples == factor * (spec.n_examples // spec.block) * spec.block
    )


def bench_large(source: Path, target: Path, ram_factor: float) -> dict:
    dev = source / "extractions" / "sst2" / "validation"
    per_copy = disk_bytes(dev / "acts") + disk_bytes(dev / "bits")
    factor = math.ceil(ram_factor * memory_bytes() / per_copy)
    if kept_store(source, target, factor):
        print(f"reusing {target}: {factor} × {per_copy / 1e9:.2f} GB (RAM {memory_bytes() / 1e9:.1f} GB)", flush=True)
    else:
        print(f"building a store of {factor} × {per_copy / 1e9:.2f} GB (RAM {memory_bytes() / 1e9:.1f} GB)", flush=True)
        synthetic_store(source, target, factor)
    large = target / "extractions" / "sst2" / "validation"
    runs: dict[str, list[dict]] = {"acts": [], "bits": []}

    def ranked(read: str) -> float:
        code = _LARGE_RANK.format(small=str(source), large=str(target), read=read)
        runs[read].append(_in_fresh_process(code, large / read))
        return runs[read][-1]["seconds"]

    out: dict = {"factor": factor, "ram_bytes": memory_bytes(), "store_bytes": disk_bytes(target)}
    for read in ("acts", "bits"):
        plain, rank = medians(lambda read=read: cold_read(large / read), lambda read=read: ranked(read))
        nbytes = disk_bytes(large / read)
        out[read] = {
            "bytes": nbytes,
            "plain_read_s": plain,
            "rank_s": rank,
            "plain_read_MB_per_s": nbytes / plain / 1e6,
            "rank_MB_per_s": nbytes / rank / 1e6,
            "ratio": plain / rank,
            "rank_peak_rss_MB": max(r["hwm_kb"] for r in runs[read]) / 1e3,
        }
        print(f"  {read}: {json.dumps(out[read])}", flush=True)
    out["bits_speedup"] = out["acts"]["rank_s"] / out["bits"]["rank_s"]
    out["size_ratio"] = out["acts"]["bytes"] / out["bits"]["bytes"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-large"))
    parser.add_argument("--source", type=Path, default=Path("runs/bench/rank.zarr"))
    parser.add_argument("--ram-factor", type=float, default=1.3)
    parser.add_argument("--keep", action="store_true", help="keep the large store (under <out>/large.zarr)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "large.zarr"
    try:
        results = bench_large(source_store(args.source), target, args.ram_factor)
    finally:
        if not args.keep:
            shutil.rmtree(target, ignore_errors=True)
    write_results(args.out / "results.json", {"large": results})
    a, b = results["acts"], results["bits"]
    print(f"\nstore of {results['store_bytes'] / 1e9:.1f} GB on {results['ram_bytes'] / 1e9:.1f} GB of RAM:")
    for name, r in (("float16", a), ("bits", b)):
        print(
            f"rank over {name}: {r['rank_s']:.2f} s ({r['rank_MB_per_s']:.0f} MB/s) vs plain read "
            f"{r['plain_read_s']:.2f} s ({r['plain_read_MB_per_s']:.0f} MB/s) → ratio {r['ratio']:.2f}; "
            f"peak RSS {r['rank_peak_rss_MB']:.0f} MB"
        )
    print(f"bits vs float16 rank: {results['bits_speedup']:.1f}× (size ratio {results['size_ratio']:.1f}×)")


if __name__ == "__main__":
    main()
