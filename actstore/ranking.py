"""Eq. 2–5 of METHOD.md out of core: dask streams the Zarr chunks, numba counts on float16 bits.

Only small arrays (seed, layer, token, neuron) are ever held in memory; the activations are read
chunk by chunk, a few chunks at a time. T5's decoder neurons are counted from their own extraction and
joined after the encoder's along ``layer`` (a ``stack`` coordinate says which is which); their one
decoding step fills ``token`` 0, the other tokens are NaN and never a neuron's best.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import dask
import numba
import numpy as np

from . import kernels
from .baselines import baseline_from_sum, block_sum, matching_baseline
from .errors import ActstoreError
from .scheduler import shared
from .specs import RankingSpec, to_attrs
from .store import ChunkReader, ExtractionReader, Store
from .tasks import source_task

if TYPE_CHECKING:  # imported where used: dask.array and xarray are most of a second, which reading a ranking
    import xarray as xr  # or `actstore --help` need not pay for

#: storage chunks per dask chunk along ``example`` (4 was fastest on 2 cores, see STORAGE-NOTES.md)
CHUNKS_PER_TASK = 4
#: sub-task requests that stand for several rankings (see ``subtask_names``)
ONE_VS_REST, COMBINED, REST = "one-vs-rest", "combined", "rest"


#: predictivities are compared on this many decimals: they are means of count ratios, and equal ones may differ in
#: the last bit (e.g. (0.6 + 1.0) / 2 and (0.7 + 0.9) / 2); rounded, they tie (ranks: broken by neuron index)
PREDICTIVITY_DECIMALS = 12


#: which stored form rank counts: the bits when the extraction kept them (against the asked baseline), else the values
READS = ("acts", "bits")


def rank(
    store: Store,
    task: str,
    *,
    split: str = "validation",
    baseline_from: str | None = None,
    subtask: str | None = None,
    read: str | None = None,
    cross_layout: bool = False,
) -> xr.Dataset:
    """Compute accuracy, predictivity and skill-neuron ranks for ``task`` and write them into the store.

    A multi-class task is ranked as a binary sub-task (``subtask``): ``"positive-vs-negative"``,
    ``"neutral-vs-rest"`` (see ``parse_subtask``), stored as ``rankings/<task>:<subtask>``; or ``"combined"``, the
    first paper's skill neurons filled from both of its sub-tasks (see ``combine_rankings``). For several at once
    in one pass over the activations, ``"one-vs-rest"`` included, use ``rank_subtasks``. ``read``: count the
    stored ``"bits"`` or the ``"acts"`` (default: the bits when kept; both give the same ranking, bit for bit).
    ``cross_layout``: accept a train baseline made in another input layout than the activations.
    """
    if subtask is not None:
        if subtask == ONE_VS_REST:
            raise ActstoreError(
                f"'{ONE_VS_REST}' gives one ranking per class: use rank_subtasks(store, '{task}', ['{ONE_VS_REST}'])"
            )
        made = rank_subtasks(
            store, task, [subtask], split=split, baseline_from=baseline_from, read=read, cross_layout=cross_layout
        )
        return list(made.values())[-1]  # the sub-task asked for, or the combined ranking after its parts
    extracted = store.extraction_readers(task, split)
    spec = extracted[0].spec
    labels = extracted[0].labels
    if len(spec.label_names) != 2 or not np.isin(labels, (0, 1)).all():
        raise ActstoreError(
            f"ranking needs binary labels; task '{task}' has {len(spec.label_names)} classes: "
            f"rank binary sub-tasks with --subtask ({', '.join(_examples(spec.label_names))})"
        )
    if len(np.unique(labels)) < 2:  # every neuron would be "perfectly predictive" of the one class
        raise ActstoreError(
            f"{task}/{split} has examples of one class only ({spec.label_names[int(labels[0])]}): "
            "a neuron's accuracy needs both"
        )
    baseline_task, counts, stacks = _class_counts(store, extracted, labels, baseline_from, read, cross_layout)
    ranking = ranking_dataset(accuracy_from_counts(counts, labels), np.asarray(spec.seeds), stacks)
    return _put(
        store,
        RankingSpec(
            task=task,
            split=split,
            baseline_task=baseline_task,
            model=spec.model,
            prompt_checksum=spec.prompt_checksum,
            seeds=spec.seeds,
            n_examples=spec.n_examples,
        ),
        ranking,
    )


def _class_counts(
    store: Store,
    parts: list[ExtractionReader],
    labels: np.ndarray,
    baseline_from: str | None,
    read: str | None = None,
    cross_layout: bool = False,
) -> tuple[str, np.ndarray, list[str]]:
    """(baseline task, per class how often ``a > baseline``: (seed, class, layer, token, neuron), the stack of
    each layer), in one pass over the activations of each stack's extraction (``Store.extraction_readers``: T5's
    decoder after its encoder; labels outside the classes, e.g. -1, are left out)."""
    spec = parts[0].spec
    baseline_task = baseline_from or source_task(spec.task)
    n_classes = len(spec.label_names)
    if read not in (None, *READS):
        raise ActstoreError(f"read must be one of {', '.join(READS)}, not {read}")
    bits_usable = spec.store_bits and spec.baseline_task == baseline_task
    if read == "bits" and not bits_usable:
        raise ActstoreError(
            f"{spec.task}/{spec.split} kept no bits against the baseline of '{baseline_task}'"
            + (f" (its bits compare with '{spec.baseline_task}''s)" if spec.store_bits else "")
        )
    if read == "acts" and not spec.store_acts:
        raise ActstoreError(f"{spec.task}/{spec.split} kept only its above-baseline bits: rank it from the bits")
    if bits_usable and read != "acts":  # compared at extraction: count the bits (a 16th of float16's bytes)
        counts = [
            _reduce(
                part.chunks("bits"),
                _count_bits,
                (n_classes,),
                labels,
                None,
                n_neurons=part.spec.model.n_neurons,
            )
            for part in parts
        ]
    elif spec.store_acts:
        # every stack's baseline before the long pass
        baselines = [matching_baseline(store, baseline_task, part.spec, cross_layout) for part in parts]
        counts = [
            _reduce(
                part.chunks("acts"),
                _count_kernel(spec.dtype, n_classes),
                (n_classes,),
                labels,
                kernels.thresholds_for(baseline, spec.dtype),
            )
            for part, baseline in zip(parts, baselines)
        ]
    elif spec.store_bits:
        raise ActstoreError(
            f"{spec.task}/{spec.split} kept only its bits against the baseline of "
            f"'{spec.baseline_task}', not of '{baseline_task}': rank it with --baseline-from "
            f"{spec.baseline_task}, or extract it with --keep both --baseline-from {baseline_task} "
            "into a new store"
        )
    else:
        raise ActstoreError(f"{spec.task}/{spec.split} was streamed without storing activations; re-extract it")
    return baseline_task, join_stacks(counts), [part.spec.stack for part in parts for _ in range(part.spec.n_layers)]


def join_stacks(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Per-stack arrays (..., layer, token, neuron) joined along ``layer``; a stack with fewer tokens (T5's
    decoder: one decoding step) is padded with NaN. A single stack is returned as it is."""
    if len(parts) == 1:
        return parts[0]
    tokens = max(p.shape[-2] for p in parts)
    padded = [
        np.pad(
            p.astype(np.float64), [(0, 0)] * (p.ndim - 2) + [(0, tokens - p.shape[-2]), (0, 0)], constant_values=np.nan
        )
        for p in parts
    ]
    return np.concatenate(padded, axis=-3)


# ---- multi-class tasks: binary sub-tasks (the first paper's approach) and one-vs-rest


@dataclass(frozen=True)
class Subtask:
    """A binary sub-task of a multi-class task: ``positive`` classes are label 1, ``negative`` label 0, and the
    examples of any other class are left out."""

    name: str
    positive: tuple[int, ...]
    negative: tuple[int, ...]

    def labels(self, labels: np.ndarray) -> np.ndarray:
        """Class ids → 1 (positive), 0 (negative) or -1 (left out), the convention of ``kernels.count_greater``."""
        out = np.full(labels.shape, -1, np.int64)
        out[np.isin(labels, self.positive)] = 1
        out[np.isin(labels, self.negative)] = 0
        return out


def parse_subtask(name: str, label_names: Sequence[str]) -> Subtask:
    """``"<classes>-vs-<classes>"``: class names joined by ``+``, and ``rest`` for every class not on the other
    side, e.g. ``positive-vs-negative``, ``neutral-vs-rest``, ``negative+neutral-vs-positive``."""
    names = [n.lower() for n in label_names]
    sides = name.split("-vs-")
    usage = (
        f"name a binary sub-task as <classes>-vs-<classes|rest> (classes of this task: {', '.join(label_names)}; "
        f"e.g. {', '.join(_examples(label_names))})"
    )
    if len(sides) != 2 or not all(sides):
        raise ActstoreError(f"cannot read sub-task '{name}': {usage}")
    ids: list[tuple[int, ...] | None] = []
    for side in sides:
        if side.lower() == REST:
            ids.append(None)
            continue
        unknown = [c for c in side.split("+") if c.lower() not in names]
        if unknown:
            raise ActstoreError(f"unknown class '{unknown[0]}' in sub-task '{name}': {usage}")
        ids.append(tuple(dict.fromkeys(names.index(c.lower()) for c in side.split("+"))))
    if ids[0] is None and ids[1] is None:
        raise ActstoreError(f"sub-task '{name}' is rest against rest: {usage}")
    rest = lambda other: tuple(i for i in range(len(names)) if i not in other)  # noqa: E731
    positive = ids[0] if ids[0] is not None else rest(ids[1])
    negative = ids[1] if ids[1] is not None else rest(ids[0])
    if set(positive) & set(negative) or not positive or not negative:
        raise ActstoreError(f"sub-task '{name}' needs two disjoint, non-empty sides: {usage}")
    spelled = ["+".join(label_names[i] for i in side) if side is not None else REST for side in ids]
    return Subtask("-vs-".join(spelled), positive, negative)  # class names as the task spells them


def paper_pair(label_names: Sequence[str]) -> list[str]:
    """The first paper's two sub-tasks of a 3-class task with a neutral class: the other two against each other
    (the later class as label 1) and neutral against the rest; for negative/neutral/positive:
    ``positive-vs-negative`` and ``neutral-vs-rest``."""
    lower = [n.lower() for n in label_names]
    if len(label_names) != 3 or "neutral" not in lower:
        raise ActstoreError(
            f"'{COMBINED}' fills skill neurons from the first paper's two sub-tasks of a 3-class task "
            f"with a 'neutral' class; this task has {', '.join(label_names)}: rank the sub-tasks and "
            "combine them with actstore.ranking.combine_rankings"
        )
    neutral = label_names[lower.index("neutral")]
    first, second = (n for n in label_names if n != neutral)
    return [f"{second}-vs-{first}", f"{neutral}-vs-{REST}"]


def subtask_names(request: str, label_names: Sequence[str]) -> list[str]:
    """The binary sub-tasks a request needs: itself, one per class for ``one-vs-rest``, the paper's pair for
    ``combined``."""
    if request == ONE_VS_REST:
        return [f"{c}-vs-{REST}" for c in label_names]
    if request == COMBINED:
        return paper_pair(label_names)
    return [parse_subtask(request, label_names).name]


def rank_subtasks(
    store: Store,
    task: str,
    subtasks: Sequence[str],
    *,
    split: str = "validation",
    baseline_from: str | None = None,
    read: str | None = None,
    cross_layout: bool = False,
) -> dict[str, xr.Dataset]:
    """Rank binary sub-tasks of a (multi-class) task in one pass over its activations; each ranking is stored as
    ``rankings/<task>:<subtask>`` and returned under that name, in request order.

    ``subtasks`` holds sub-task names (``parse_subtask``), ``"one-vs-rest"`` (every class against the rest) and
    ``"combined"`` (the paper's pair, stored too, then ``combine_rankings`` of the two). Every name is checked
    before anything is computed or written. Eq. 2's baseline is the task's train mean over all its classes
    (the streamed baseline); Eq. 3's accuracy counts only the sub-task's examples.
    """

    if isinstance(subtasks, str):
        subtasks = [subtasks]
    extracted = store.extraction_readers(task, split)
    spec = extracted[0].spec
    wanted = list(dict.fromkeys(n for request in subtasks for n in subtask_names(request, spec.label_names)))
    parts = {name: parse_subtask(name, spec.label_names) for name in wanted}
    labels = extracted[0].labels
    for part in parts.values():
        for side in (part.positive, part.negative):
            if not np.isin(labels, side).any():
                raise ActstoreError(
                    f"sub-task '{part.name}' of '{task}' has no {split} examples of "
                    f"{'+'.join(spec.label_names[i] for i in side)}"
                )
    baseline_task, counts, stacks = _class_counts(store, extracted, labels, baseline_from, read, cross_layout)
    made: dict[str, xr.Dataset] = {}
    spec_of = partial(
        RankingSpec,
        task=task,
        split=split,
        baseline_task=baseline_task,
        model=spec.model,
        prompt_checksum=spec.prompt_checksum,
        seeds=spec.seeds,
    )
    class_names = lambda ids: tuple(spec.label_names[i] for i in ids)  # noqa: E731
    for part in parts.values():
        binary = np.stack([counts[:, list(part.negative)].sum(axis=1), counts[:, list(part.positive)].sum(axis=1)], 1)
        sub_labels = part.labels(labels)
        ranking = ranking_dataset(accuracy_from_counts(binary, sub_labels), np.asarray(spec.seeds), stacks)
        made[part.name] = _put(
            store,
            spec_of(
                n_examples=int((sub_labels >= 0).sum()),
                subtask=part.name,
                positive=class_names(part.positive),
                negative=class_names(part.negative),
            ),
            ranking,
        )
    out = {}
    for request in subtasks:
        if request == COMBINED:
            pair = paper_pair(spec.label_names)
            included = np.isin(labels, [i for n in pair for i in (*parts[n].positive, *parts[n].negative)])
            out.update({f"{task}:{n}": made[n] for n in pair})
            out[f"{task}:{COMBINED}"] = _put(
                store,
                spec_of(n_examples=int(included.sum()), subtask=COMBINED, parts=tuple(pair)),
                combine_rankings([made[n] for n in pair]),
            )
        else:
            out.update({f"{task}:{n}": made[n] for n in subtask_names(request, spec.label_names)})
    return out


def combine_rankings(parts: Sequence[xr.Dataset]) -> xr.Dataset:
    """Skill neurons filled from several sub-tasks' rankings (the first paper, for 3-class tasks).

    Rule: per layer, the sub-tasks take turns in the given order; at its turn a sub-task adds its most predictive
    neuron of the layer not yet in the list (duplicates are skipped, so every turn adds one neuron). That order is
    ``rank_in_layer``; ``rank_global`` is filled the same way from the sub-tasks' global rankings. ``source`` says
    which sub-task placed a neuron in its layer's list. ``predictivity`` is the neuron's highest predictivity over
    the sub-tasks, and ``accuracy`` and ``best_token`` are those of that sub-task (index in ``part``), so Eq. 4–5
    still hold; the ranks need not follow ``predictivity``.
    """
    import xarray as xr

    if len(parts) < 1:
        raise ActstoreError("combine_rankings needs at least one ranking")
    pred = np.stack([p["predictivity"].values for p in parts])  # (part, layer, neuron)
    best = pred.argmax(axis=0)
    n_layers, n_neurons = best.shape
    in_layer = np.empty((n_layers, n_neurons), np.int32)
    source = np.empty((n_layers, n_neurons), np.int32)
    for layer in range(n_layers):
        order, by = _interleave([np.argsort(p["rank_in_layer"].values[layer]) for p in parts])
        in_layer[layer, order] = np.arange(n_neurons, dtype=np.int32)
        source[layer, order] = by
    order, _ = _interleave([np.argsort(p["rank_global"].values.ravel()) for p in parts])
    glob = np.empty(n_layers * n_neurons, np.int64)
    glob[order] = np.arange(glob.size)
    pick = lambda name: np.take_along_axis(  # noqa: E731
        np.stack([p[name].values for p in parts]),
        best.reshape(1, 1, n_layers, *([1] * (parts[0][name].ndim - 3)), n_neurons),
        axis=0,
    )[0]
    first = parts[0]
    return xr.Dataset(
        {
            "accuracy": (first["accuracy"].dims, pick("accuracy")),
            "predictivity": (("layer", "neuron"), pred.max(axis=0)),
            "best_token": (first["best_token"].dims, pick("best_token")),
            "rank_in_layer": (("layer", "neuron"), in_layer),
            "rank_global": (("layer", "neuron"), glob.reshape(n_layers, n_neurons)),
            "source": (("layer", "neuron"), source),
            "part": (("layer", "neuron"), best.astype(np.int32)),
        },
        coords={name: first[name] for name in ("seed", "layer", "token", "neuron", "layer_stack")},
    )


def _interleave(orders: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Permutations taking turns, each adding its first item not yet taken → (merged order, whose turn added it)."""
    lists = [o.tolist() for o in orders]
    n = len(lists[0])
    taken = bytearray(n)
    pointers = [0] * len(lists)
    merged, by = np.empty(n, np.int64), np.empty(n, np.int32)
    for k in range(n):
        turn = k % len(lists)
        items, i = lists[turn], pointers[turn]
        while taken[items[i]]:
            i += 1
        merged[k], by[k], taken[items[i]], pointers[turn] = items[i], turn, 1, i + 1
    return merged, by


def _put(store: Store, spec: RankingSpec, ranking: xr.Dataset) -> xr.Dataset:
    """Store a ranking; it comes back as ``store.ranking`` reads it (its spec in ``attrs``)."""
    store.put_ranking(spec, ranking)
    return ranking.assign_attrs(spec=to_attrs(spec))


def _examples(label_names: Sequence[str]) -> list[str]:
    if len(label_names) == 2:
        return [f"{label_names[1]}-vs-{label_names[0]}"]
    try:
        first = paper_pair(label_names) + [COMBINED]
    except ActstoreError:
        first = [f"{label_names[1]}-vs-{label_names[0]}", f"{label_names[0]}-vs-{REST}"]
    return first + [ONE_VS_REST]


def recompute_baseline(store: Store, task: str, stack: str = "encoder") -> np.ndarray:
    """Eq. 2 from stored train activations (needs ``--store-train``); for float16 it equals the streamed
    baseline exactly (both sum the same float16 values in exact fixed point)."""
    spec = store.extraction_spec(task, "train", stack)
    if spec is None or not spec.store_acts:
        raise ActstoreError(f"task '{task}' has no stored train activations (extract with --store-train)")
    acts = store.extraction_reader(task, "train", stack).chunks("acts")
    return baseline_from_sum(_reduce(acts, _sum_kernel, (), None, None)[:, 0], spec.n_examples)


def accuracy_from_counts(counts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Eq. 3 from per-label counts of ``a > baseline``: correct = (a>b and y=1) + (not a>b and y=0), over the
    examples labelled 0 or 1 only (a sub-task leaves the others out, labelled -1)."""
    n1 = int((labels == 1).sum())
    n0 = int((labels == 0).sum())
    return (counts[:, 1] + (n0 - counts[:, 0])) / (n0 + n1)


def ranking_dataset(accuracy: np.ndarray, seeds: np.ndarray, stacks: Sequence[str] | None = None) -> xr.Dataset:
    """Eq. 4–5 and the rankings from accuracies (seed, layer, token, neuron); ``stacks`` names each layer's
    stack (default: all encoder). NaN accuracies (tokens a decoder layer does not have) are skipped."""
    import xarray as xr

    per_token = np.maximum(accuracy, 1.0 - accuracy)
    predictivity = np.nanmax(per_token, axis=2).mean(axis=0)
    n_layers, n_neurons = predictivity.shape
    key = -np.round(predictivity, PREDICTIVITY_DECIMALS)  # ties by neuron index
    in_layer = np.empty(predictivity.shape, np.int32)
    order = np.argsort(key, axis=1, kind="stable")
    np.put_along_axis(in_layer, order, np.arange(n_neurons, dtype=np.int32)[None, :].repeat(n_layers, 0), axis=1)
    glob = np.empty(predictivity.size, np.int64)
    glob[np.argsort(key.ravel(), kind="stable")] = np.arange(predictivity.size)
    dims4, dims2 = ("seed", "layer", "token", "neuron"), ("layer", "neuron")
    return xr.Dataset(
        {
            "accuracy": (dims4, accuracy),
            "predictivity": (dims2, predictivity),
            "best_token": (("seed", "layer", "neuron"), np.nanargmax(per_token, axis=2).astype(np.int32)),
            "rank_in_layer": (dims2, in_layer),
            "rank_global": (dims2, glob.reshape(predictivity.shape)),
        },
        coords={
            "seed": seeds,
            "layer": np.arange(n_layers),
            "token": np.arange(accuracy.shape[2]),
            "neuron": np.arange(n_neurons),
            "layer_stack": ("layer", list(stacks or ["encoder"] * n_layers)),
        },
    )


def top_neurons(ranking: xr.Dataset, k: int = 10) -> list[dict]:
    """The k most predictive neurons overall, best first."""
    if k < 1:
        raise ActstoreError(f"the number of top neurons must be at least 1, not {k}")
    flat = ranking["rank_global"].values.ravel()
    rows = []
    for index in np.argsort(flat)[:k]:
        layer, neuron = np.unravel_index(index, ranking["rank_global"].shape)
        rows.append(
            {
                "rank": int(flat[index]) + 1,
                "stack": str(ranking["layer_stack"].values[layer]),
                "layer": int(layer),
                "neuron": int(neuron),
                # as ranked: tied neurons must not print as 0.6737 above 0.6738
                "predictivity": round(float(ranking["predictivity"].values[layer, neuron]), PREDICTIVITY_DECIMALS),
                "best_token": int(np.bincount(ranking["best_token"].values[:, layer, neuron]).argmax()),
            }
        )
    return rows


def model_accuracy(store: Store, task: str, split: str = "validation") -> np.ndarray:
    """Per seed: how often the prompted model's label-word prediction is right."""
    ds = store.extraction(task, split)
    return (ds["prediction"] == ds["label"]).mean("example").values


def _count_kernel(dtype: str, n_classes: int = 2) -> Callable:
    if dtype == "float16":
        return partial(kernels.count_greater, n_classes=n_classes)

    def count_float32(data: np.ndarray, baseline: np.ndarray, labels: np.ndarray, out: np.ndarray) -> None:
        above = data > baseline  # float32 vs float64 compares exactly in float64
        for c in range(n_classes):
            out[c] += above[labels == c].sum(0)

    return count_float32


def _sum_kernel(data: np.ndarray, _thresholds: None, _labels: None, out: np.ndarray) -> None:
    out[0] += block_sum(data)


def _count_bits(data: np.ndarray, _thresholds: None, labels: np.ndarray, out: np.ndarray) -> None:
    """Per label, how many of a read's packed bits (e, token*byte) are set, added into ``out``
    (``kernels.bit_counts``)."""
    kernels.add_bit_counts(data, labels, out)


#: dask threads per core on the threaded scheduler: a task waits on its chunk reads, and other tasks' kernels fill
#: the core meanwhile (rank over the bench's 1.65 GB from a cold cache: 1.55 s with 2 threads, 1.22 s with 6;
#: a cluster's workers keep their own thread counts)
READERS_PER_CORE = 3
#: a task of bits reads this many times more storage chunks than one of float16 values (a 16th of the bytes each)
BITS_PER_TASK = 16
#: bytes a task asks the store for at once: small chunks (bits) are fetched together, the store reading them
#: concurrently; a float16 chunk (MiniLM: 9.8 MB) is larger, so it is fetched alone. Either way each chunk is counted
#: where it lies, never copied into a joined array
READ_BYTES = 8 * 2**20


def _reduce(
    array: ChunkReader,
    kernel: Callable,
    out: tuple[int, ...],
    labels: np.ndarray | None,
    per_neuron: np.ndarray | None,
    n_neurons: int | None = None,
) -> np.ndarray:
    """Apply ``kernel(chunk (e, token*neuron), per_neuron (token*neuron,), labels (e,), out)`` to every storage chunk of
    ``array`` (seed, example, layer, token, neuron; a chunk per seed, block and layer) and sum over examples →
    (seed, *out, layer, token, neuron), on the current dask scheduler (``scheduler.using``). A task reads
    ``CHUNKS_PER_TASK`` storage chunks (bits: 16 times as many), whole chunks in its own thread, the next read while
    it counts (``ChunkReader.stream``), at most ``READ_BYTES`` per read (a float16 chunk alone), and the kernel adds
    each chunk into the task's one total (``out``): chunks are never joined into a larger array, and only one sum
    per task leaves it.
    ``labels`` and ``per_neuron`` enter as dask arrays (scattered on a cluster), never inside the task function,
    which would ship them with the graph. Packed bits (``n_neurons`` given) come out per neuron."""
    import dask.array as da

    n_seeds, n_examples, n_layers, n_tokens, last = array.shape
    block = array.chunks[1]
    per_task = CHUNKS_PER_TASK * (BITS_PER_TASK if array.dtype == np.uint8 else 1)
    n_groups = -(-n_examples // (block * per_task))
    n_out = int(np.prod(out, dtype=int)) if out else 1
    dtype = np.dtype(np.float64 if array.dtype == np.float32 else np.int64)
    grid = np.arange(n_seeds * n_groups * n_layers).reshape(n_seeds, n_groups, n_layers)
    args: list = [da.from_array(grid, chunks=1), "sgl"]  # one task per (seed, group of chunks, layer)
    new_axes = {"c": n_out}
    if per_neuron is not None:
        args += [shared(per_neuron, (1, 1, n_tokens, last)), "sltn"]
    else:
        new_axes.update(t=n_tokens, n=n_neurons or last)
    if labels is not None:
        args += [shared(labels, (block * per_task,)), "g"]
    per_group = da.blockwise(
        _task,
        "sgcltn",
        *args,
        new_axes=new_axes,
        align_arrays=False,
        concatenate=True,
        dtype=dtype,
        array=array,
        total=(n_out, dtype, n_neurons),
        grid=grid.shape,
        per_task=per_task,
        kernel=kernel,
        thresholds=per_neuron is not None,
        classes=labels is not None,
    )
    readers = dask.config.get("num_workers", None) or READERS_PER_CORE * (os.cpu_count() or 1)
    with dask.config.set(num_workers=readers):
        return per_group.sum(axis=1).compute()


def _task(
    index: np.ndarray,
    *given: np.ndarray,
    array: ChunkReader,
    total: tuple[int, np.dtype, int | None],
    grid: tuple[int, int, int],
    per_task: int,
    kernel: Callable,
    thresholds: bool,
    classes: bool,
) -> np.ndarray:
    """One task of ``_reduce``: its storage chunks read a few MB at a time, each read counted into one total
    (``total``: its rows, dtype, and for packed bits the neurons) → (1, 1, out, 1, token, neuron); module level, so
    that workers import it. The kernel runs on this task's thread alone: dask runs a task per core, and numba's own
    threads on top of them would only contend for the same cores."""
    numba.set_num_threads(1)  # for this thread only
    s, g, layer = (int(i) for i in np.unravel_index(int(index.ravel()[0]), grid))
    inputs = list(given)
    per_neuron = inputs.pop(0).reshape(-1) if thresholds else None
    labels = inputs.pop(0) if classes else None
    n_out, dtype, n_neurons = total
    block, n_tokens, row = array.chunks[1], array.shape[3], array.shape[3] * array.shape[4]
    out = kernels.bit_counts(n_out, row) if n_neurons is not None else np.zeros((n_out, row), dtype)
    step = max(1, READ_BYTES // (block * row * array.dtype.itemsize))  # storage chunks per read
    first, end = g * per_task, min((g + 1) * per_task, -(-array.shape[1] // block))
    reads = [[(s, c, layer, 0, 0) for c in range(b, min(b + step, end))] for b in range(first, end, step)]
    for b, chunks in zip(range(first, end, step), array.stream(reads)):
        for c, data in enumerate(chunks, (b - first)):  # each chunk where it lies: never joined
            rows = slice(c * block, c * block + data.shape[1])
            kernel(data.reshape(data.shape[1], -1), per_neuron, None if labels is None else labels[rows], out=out)
    if n_neurons is not None:
        out = kernels.unpacked(out, row, (n_tokens,), n_neurons)
    return out.reshape(1, 1, n_out, 1, n_tokens, -1)
