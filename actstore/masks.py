"""Which neurons a suppression run silences: the top x % of a stored ranking, per layer or over all neurons, and the
random control of as many. Pure numpy on rankings, apart from the model runs (``suppression``), so that the analyses
that compare masks (``analysis.compare_adversarial``, ``skill_layers``) read a store without torch."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

SCOPES = ("layer", "global")
#: the paper's x axis (Figure 4): 0–15 % of the neurons
DEFAULT_PERCENTS = (0.0, 1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0)


def neuron_count(percent: float, n: int) -> int:
    """floor(percent % of n); the tiny epsilon keeps e.g. 7 % of 100 at 7 despite binary fractions."""
    return math.floor(percent * n / 100 + 1e-9)


def skill_mask(ranking: xr.Dataset, percent: float, scope: str) -> np.ndarray:
    """(layer, neuron) bool: the top ``percent`` % by predictivity per layer or over all neurons."""
    if scope == "layer":
        ranks = ranking["rank_in_layer"].values
        return ranks < neuron_count(percent, ranks.shape[1])
    ranks = ranking["rank_global"].values
    return ranks < neuron_count(percent, ranks.size)


def random_ranks(n_layers: int, n_neurons: int, draw: int, seed: int = 0) -> np.ndarray:
    """(layer, neuron) a random order of the neurons of every layer; ``ranks < count`` is one draw's mask."""
    rng = np.random.default_rng([seed, draw])
    return np.stack([rng.permutation(n_neurons) for _ in range(n_layers)])
