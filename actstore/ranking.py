"""Eq. 2–5 of METHOD.md out of core: dask streams the Zarr chunks, numba counts on float16 bits.

Only small arrays (seed, layer, token, neuron) are ever held in memory; the activations are read
chunk by chunk, a few chunks at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import dask
import dask.array as da
import numpy as np
import xarray as xr

from . import kernels
from .errors import ActstoreError
from .extraction import baseline_from_sum, block_sum
from .specs import ExtractionSpec, RankingSpec
from .store import Store
from .tasks import get_task

#: storage chunks per dask chunk along ``example`` (4 was fastest on 2 cores, see STORAGE-NOTES.md)
CHUNKS_PER_TASK = 4


def default_baseline_task(task: str) -> str:
    """Adversarial tasks take their clean source task's baseline (METHOD.md); others their own."""
    try:
        return get_task(task).clean_source or task
    except ActstoreError:  # a user's own task
        return task


def rank(store: Store, task: str, *, split: str = "validation", baseline_from: str | None = None) -> xr.Dataset:
    """Compute accuracy, predictivity and skill-neuron ranks for ``task`` and write them into the store."""
    dev = store.extraction(task, split)
    spec = store.extraction_spec(task, split)
    labels = dev["label"].values
    if len(spec.label_names) != 2 or not np.isin(labels, (0, 1)).all():
        raise ActstoreError(f"ranking needs binary labels; task '{task}' has {len(spec.label_names)} classes")
    if not spec.store_acts:
        raise ActstoreError(f"{task}/{split} was streamed without storing activations; re-extract it")
    baseline_task = baseline_from or default_baseline_task(task)
    baseline = _matching_baseline(store, baseline_task, spec)
    counts = _reduce(dev["acts"].data, _count_kernel(spec.dtype), (2,), labels, _thresholds(baseline, spec.dtype))
    accuracy = accuracy_from_counts(counts, labels)
    ranking = ranking_dataset(accuracy, np.asarray(spec.seeds))
    store.put_ranking(
        RankingSpec(task=task, split=split, baseline_task=baseline_task, model=spec.model,
                    prompt_checksum=spec.prompt_checksum, seeds=spec.seeds, n_examples=spec.n_examples),
        ranking,
    )
    return store.ranking(task)


def recompute_baseline(store: Store, task: str) -> np.ndarray:
    """Eq. 2 from stored train activations (needs ``--store-train``); for float16 it equals the streamed
    baseline exactly (both sum the same float16 values in exact fixed point)."""
    spec = store.extraction_spec(task, "train")
    if spec is None or not spec.store_acts:
        raise ActstoreError(f"task '{task}' has no stored train activations (extract with --store-train)")
    acts = store.extraction(task, "train")["acts"].data
    return baseline_from_sum(_reduce(acts, _sum_kernel, (), None, None)[:, 0], spec.n_examples)


def accuracy_from_counts(counts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Eq. 3 from per-label counts of ``a > baseline``: correct = (a>b and y=1) + (not a>b and y=0)."""
    n1 = int(labels.sum())
    n0 = labels.size - n1
    return (counts[:, 1] + (n0 - counts[:, 0])) / labels.size


def ranking_dataset(accuracy: np.ndarray, seeds: np.ndarray) -> xr.Dataset:
    """Eq. 4–5 and the rankings from accuracies (seed, layer, token, neuron)."""
    per_token = np.maximum(accuracy, 1.0 - accuracy)
    predictivity = per_token.max(axis=2).mean(axis=0)
    n_layers, n_neurons = predictivity.shape
    in_layer = np.empty(predictivity.shape, np.int32)
    order = np.argsort(-predictivity, axis=1, kind="stable")
    np.put_along_axis(in_layer, order, np.arange(n_neurons, dtype=np.int32)[None, :].repeat(n_layers, 0), axis=1)
    glob = np.empty(predictivity.size, np.int64)
    glob[np.argsort(-predictivity.ravel(), kind="stable")] = np.arange(predictivity.size)
    dims4, dims2 = ("seed", "layer", "token", "neuron"), ("layer", "neuron")
    return xr.Dataset(
        {
            "accuracy": (dims4, accuracy),
            "predictivity": (dims2, predictivity),
            "best_token": (("seed", "layer", "neuron"), per_token.argmax(axis=2).astype(np.int32)),
            "rank_in_layer": (dims2, in_layer),
            "rank_global": (dims2, glob.reshape(predictivity.shape)),
        },
        coords={"seed": seeds, "layer": np.arange(n_layers), "token": np.arange(accuracy.shape[2]),
                "neuron": np.arange(n_neurons)},
    )


def top_neurons(ranking: xr.Dataset, k: int = 10) -> list[dict]:
    """The k most predictive neurons overall, best first."""
    flat = ranking["rank_global"].values.ravel()
    rows = []
    for index in np.argsort(flat)[:k]:
        layer, neuron = np.unravel_index(index, ranking["rank_global"].shape)
        rows.append({
            "rank": int(flat[index]) + 1, "layer": int(layer), "neuron": int(neuron),
            "predictivity": float(ranking["predictivity"].values[layer, neuron]),
            "best_token": int(np.bincount(ranking["best_token"].values[:, layer, neuron]).argmax()),
        })
    return rows


def model_accuracy(store: Store, task: str, split: str = "validation") -> np.ndarray:
    """Per seed: how often the prompted model's label-word prediction is right."""
    ds = store.extraction(task, split)
    return (ds["prediction"] == ds["label"]).mean("example").values


def _matching_baseline(store: Store, baseline_task: str, dev: ExtractionSpec) -> np.ndarray:
    train = store.extraction_spec(baseline_task, "train")
    if train is None:
        raise ActstoreError(f"no train baseline for '{baseline_task}' in {store.path}: extract {baseline_task} --split train first")
    for what, a, b in (("model", train.model, dev.model), ("prompts", train.prompt_checksum, dev.prompt_checksum),
                       ("seeds", train.seeds, dev.seeds), ("prompt length", train.n_tokens, dev.n_tokens)):
        if a != b:
            raise ActstoreError(f"the baseline of '{baseline_task}' was made with other {what} than {dev.task}/{dev.split}")
    return store.baseline(baseline_task).values


def _thresholds(baseline: np.ndarray, dtype: str) -> np.ndarray:
    return kernels.threshold_keys(baseline) if dtype == "float16" else baseline


def _count_kernel(dtype: str) -> Callable:
    if dtype == "float16":
        return kernels.count_greater

    def count_float32(data: np.ndarray, baseline: np.ndarray, labels: np.ndarray) -> np.ndarray:
        above = data > baseline  # float32 vs float64 compares exactly in float64
        return np.stack([above[labels == c].sum(0) for c in (0, 1)]).astype(np.int64)

    return count_float32


def _sum_kernel(data: np.ndarray, _thresholds: None, _labels: None) -> np.ndarray:
    return block_sum(data)[None]


def _reduce(acts: da.Array, kernel: Callable, out: tuple[int, ...], labels: np.ndarray | None,
            per_neuron: np.ndarray | None) -> np.ndarray:
    """Apply ``kernel(block (e, token*neuron), per_neuron (token*neuron,), labels (e,))`` to every chunk of
    acts (seed, example, layer, token, neuron) and sum over examples → (seed, *out, layer, token, neuron)."""
    s, _, n_layers, n_tokens, n_neurons = acts.shape
    acts = acts.rechunk({1: acts.chunks[1][0] * CHUNKS_PER_TASK})
    n_out = int(np.prod(out, dtype=int)) if out else 1

    def block(a: np.ndarray, block_info: dict) -> np.ndarray:
        (s0, _), (e0, e1), (layer, _), _, _ = block_info[0]["array-location"]
        flat = a.reshape(a.shape[1], -1)
        lab = None if labels is None else labels[e0:e1]
        thr = None if per_neuron is None else per_neuron[s0, layer].reshape(-1)
        return kernel(flat, thr, lab).reshape(1, 1, n_out, 1, n_tokens, n_neurons)

    partial = acts.map_blocks(
        block, new_axis=[2], dtype=np.int64 if acts.dtype == np.float16 else np.float64,
        chunks=((1,) * s, (1,) * len(acts.chunks[1]), (n_out,), (1,) * n_layers, (n_tokens,), (n_neurons,)),
    )
    try:
        with dask.config.set(scheduler="threads"):
            return partial.sum(axis=1).compute()
    except ValueError as exc:
        if "checksum" in str(exc):
            raise ActstoreError(f"a chunk of the stored activations is corrupted ({exc}); "
                                "run actstore verify to find and repair it") from None
        raise
