"""The train baseline (Eq. 2, METHOD.md) an extraction's bits and a ranking compare with: summed exactly block by
block, and matched to the extraction it serves. Apart from extraction, so that whoever reads a store (ranking)
does not import torch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import kernels
from .errors import ActstoreError
from .specs import ExtractionSpec, layout_mismatch
from .store import Store


def stack_specs(spec: ExtractionSpec) -> list[ExtractionSpec]:
    """The extraction of every stack a forward pass captures: the encoder's, and T5's decoder's."""
    return [spec] + ([replace(spec, stack="decoder")] if spec.model.n_decoder_layers else [])


def matching_baseline(store: Store, baseline_task: str, dev: ExtractionSpec, cross_layout: bool = False) -> np.ndarray:
    """The train baseline (seed, layer, token, neuron) of ``baseline_task`` for ``dev``'s stack, refused unless it
    was made with the same model, layout (``cross_layout``: any), prompts, seeds and prompt length."""
    train = store.extraction_spec(baseline_task, "train", dev.stack)
    if train is None:
        raise ActstoreError(
            f"no train baseline for '{baseline_task}' in {store.location}: extract {baseline_task} --split train first"
        )
    if why := layout_mismatch(f"train activations of '{baseline_task}'", train.model, dev.model):
        if not cross_layout:
            raise ActstoreError(why)
        train = replace(train, model=replace(train.model, layout=dev.model.layout))
    for what, a, b in (
        ("model", train.model, dev.model),
        ("prompts", train.prompt_checksum, dev.prompt_checksum),
        ("seeds", train.seeds, dev.seeds),
        ("prompt length", train.n_tokens, dev.n_tokens),
    ):
        if a != b:
            raise ActstoreError(
                f"the baseline of '{baseline_task}' was made with other {what} than {dev.task}/{dev.split}"
            )
    return store.baseline(baseline_task, dev.stack).values


#: float16 activations sum exactly in int64 fixed point; float32 ones in float64 (in block order)
SUM_DTYPE = {"float16": np.int64, "float32": np.float64}


def block_sum(acts: np.ndarray) -> np.ndarray:
    """Σ over the examples of a block (example, layer, ...), in the accumulator type of its dtype; layer by layer,
    each a contiguous piece of extraction's layer-major blocks."""
    if acts.dtype != np.float16:
        return acts.sum(axis=0, dtype=np.float64)
    summed: np.ndarray = np.stack([kernels.fixed_point_sum(acts[:, layer]) for layer in range(acts.shape[1])])
    return summed


def baseline_from_sum(total: np.ndarray, n: int) -> np.ndarray:
    """Eq. 2 from a running sum; from the exact fixed-point sum it takes one float64 rounding, whatever
    the order in which the blocks were summed."""
    scale = kernels.FIXED_POINT_SCALE if total.dtype == np.int64 else 1
    return total.astype(np.float64) / scale / n
