"""Mean and standard deviation of each neuron's values (what suppression by the mean or a noise scale needs), from
the moments an extraction keeps; computed here, above the store, because the moments are the kernels' work."""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from .kernels import bits_and_moments, moment_stats
from .specs import MOMENT_SLOTS
from .store import Store
from .store.layout import coordinates


def activation_stats(store: Store, task: str, split: str = "validation", *, stack: str = "encoder") -> xr.Dataset:
    """mean and std (population) per (seed, layer, neuron) of the values over examples and tokens, from the moments
    kept during extraction (so a bits-only store has them); an extraction made before moments were kept has them
    computed from its values, block by block, to the same bits."""
    spec = store.extraction_spec(task, split, stack)
    if spec is not None and spec.store_moments:  # the reader checks: complete, or a clear error
        moments = store.extraction_reader(task, split, stack).values("moments")
    else:
        acts = store.activations(task, split, stack=stack).data  # with no extraction, the usual one-line error
        assert spec is not None
        moments = da.blockwise(
            _block_moments,
            "sbmln",
            acts,
            "sbltn",
            new_axes={"m": MOMENT_SLOTS},
            adjust_chunks={"b": 1},
            concatenate=True,
            dtype=np.int64 if spec.dtype == "float16" else np.float64,
        ).compute()
    mean, std = moment_stats(moments, spec.n_examples * spec.n_positions)
    dims = ("seed", "layer", "neuron")
    coords = coordinates(spec)
    return xr.Dataset({"mean": (dims, mean), "std": (dims, std)}, coords={k: coords[k] for k in dims})


def _block_moments(acts: np.ndarray) -> np.ndarray:
    """One storage chunk (1, e, 1, token, neuron) → its moments (1, 1, MOMENT_SLOTS, 1, neuron), as extraction keeps
    them (``kernels.bits_and_moments``)."""
    return bits_and_moments(acts[0], None)[1][None, None]
