"""Which examples drive a neuron: its highest and lowest activations (or, on a store that kept only bits, the
examples its above-baseline bit gets right and wrong), with their texts, labels and the model's predictions.

Read out of core: one (seed, layer) slice of the stored chunks at a time, one value per example kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ActstoreError
from .specs import ExtractionSpec
from .store import Store


@dataclass(frozen=True)
class TopExamples:
    """``top``/``bottom``: the highest/lowest activations (``ranked_by="activation"``), or the examples the neuron's
    bit gets right/wrong (``ranked_by="bit"``: it predicts label 1 above its baseline, or label 0 when its accuracy
    is below one half, Eq. 4). Each row: example (source row id), position, text, label, prediction (the prompted
    model's), activation (None on a bits store), above (its bit)."""

    task: str
    split: str
    layer: int
    neuron: int
    token: int
    seed: int
    ranked_by: str
    baseline: float | None
    accuracy: float
    top: list[dict] = field(default_factory=list)
    bottom: list[dict] = field(default_factory=list)


def top_examples(
    store: Store,
    task: str,
    layer: int,
    neuron: int,
    *,
    token: int | None = None,
    seed: int | None = None,
    k: int = 10,
    split: str = "validation",
) -> TopExamples:
    """The ``k`` examples at each end for one neuron (``layer`` numbered across stacks, as in rankings) at ``token``
    (default: its best token in the task's ranking, else 0) for ``seed`` (default: the first)."""
    if k < 1:
        raise ActstoreError(f"the number of examples must be at least 1, not {k}")
    spec, local = _stack_of(store, task, split, layer)
    if not 0 <= neuron < spec.model.n_neurons:
        raise ActstoreError(f"neuron {neuron} does not exist: layers have {spec.model.n_neurons} neurons")
    if seed is None:
        seed = spec.seeds[0]
    if seed not in spec.seeds:
        raise ActstoreError(f"{task}/{split} has no seed {seed} (seeds: {', '.join(map(str, spec.seeds))})")
    s = spec.seeds.index(seed)
    token = _best_token(store, task, layer, neuron, s) if token is None else token
    if not 0 <= token < spec.n_positions:
        raise ActstoreError(f"token {token} does not exist: {spec.n_positions} prompt position(s)")
    ds = store.extraction(task, split, stack=spec.stack)
    labels, prediction = ds["label"].values, ds["prediction"].values[s]
    if "acts" in ds:
        values = ds["acts"].data[s, :, local, token, neuron].astype(np.float64).compute()
        above = None
    else:
        packed = ds["bits"].data[s, :, local, token, neuron // 8].compute()
        values, above = None, (packed >> (neuron % 8)) & 1 == 1
    baseline = _baseline(store, spec, s, local, token, neuron)
    if above is None and baseline is not None:
        above = values > baseline
    binary = np.isin(labels, (0, 1))
    accuracy = float(np.mean(above[binary] == (labels[binary] == 1))) if above is not None and binary.any() else np.nan
    if values is not None:
        order = np.argsort(-values, kind="stable")
        top, bottom, ranked_by = order[:k], order[::-1][:k], "activation"
    else:
        assert above is not None  # the bits were read: the store kept no activations
        predicts = above if accuracy >= 0.5 else ~above
        right = np.flatnonzero(predicts == (labels == 1))
        wrong = np.flatnonzero(predicts != (labels == 1))
        top, bottom, ranked_by = right[:k], wrong[:k], "bit"
    rows = _rows(ds, spec, values, above, prediction)
    return TopExamples(
        task,
        split,
        layer,
        neuron,
        token,
        seed,
        ranked_by,
        baseline,
        accuracy,
        [rows(i) for i in top],
        [rows(i) for i in bottom],
    )


def _stack_of(store: Store, task: str, split: str, layer: int) -> tuple[ExtractionSpec, int]:
    """The extraction (encoder or T5's decoder) that holds ``layer``, and the layer's index in it."""
    specs = [
        spec for stack in store.stacks(task, split) if (spec := store.extraction_spec(task, split, stack)) is not None
    ]
    if not specs:
        store.extraction(task, split)  # the usual clear error
    first = 0
    for spec in specs:
        if first <= layer < first + spec.n_layers:
            return spec, layer - first
        first += spec.n_layers
    raise ActstoreError(f"layer {layer} does not exist: {task}/{split} has layers 0–{first - 1}")


def _best_token(store: Store, task: str, layer: int, neuron: int, seed_index: int) -> int:
    """The neuron's most predictive prompt token in the task's ranking (0 when the task is not ranked)."""
    if store.ranking_spec(task) is None:
        return 0
    return store.ranking_reader(task).best_token(seed_index, layer, neuron)


def _baseline(store: Store, spec: ExtractionSpec, s: int, layer: int, token: int, neuron: int) -> float | None:
    """The neuron's train baseline (Eq. 2) at this token: the one its bits were compared with, else the task's."""
    task = spec.baseline_task or spec.task
    if not store.complete(task, "train"):
        return None
    baseline = store.extraction_reader(task, "train", spec.stack).array("baseline")
    return float(np.asarray(baseline[s, layer, token, neuron]))


def _rows(ds, spec: ExtractionSpec, values: np.ndarray | None, above: np.ndarray | None, prediction: np.ndarray):
    """position → one row of the table (texts joined with ' | ' when an example has several fields)."""
    names = spec.label_names
    examples = ds["example"].values
    texts = ds["text"].values if "text" in ds else None

    def row(i: int) -> dict:
        return {
            "example": int(examples[i]),
            "position": int(i),
            "text": None if texts is None else " | ".join(str(t) for t in texts[i]),
            "label": names[int(ds["label"].values[i])],
            "prediction": names[int(prediction[i])] if prediction[i] >= 0 else None,
            "activation": None if values is None else float(values[i]),
            "above": None if above is None else bool(above[i]),
        }

    return row
