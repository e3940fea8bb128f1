"""Importance of skill neurons (METHOD.md, "Experiments"): suppress the most predictive neurons, or as many
random ones, while the prompted model runs, and measure the accuracy against the percentage suppressed.

The edit happens at the hook point extraction reads (the input of each FFN output projection), at every
token position, through ``evaluation.accuracy``'s ``edit``. Counts are ``floor(percent / 100 × n)``: per
layer (``scope="layer"``, the reference code's top x % of each layer) or over all neurons (``"global"``).
A random control suppresses, in every layer, as many neurons as the skill mask does there, drawn with
``numpy.random.default_rng([random_seed, draw])``; one draw's masks are nested across percentages.

Modes: ``zero``; ``mean`` (the neuron's train baseline, Eq. 2, averaged over the prompt tokens);
``noise`` (add N(0, (noise_scale × spread)²), where spread is the std of the neuron's activations on the
ranked split, pooled over examples and prompt tokens, from the moments extraction keeps). ``mean`` and
``noise`` read statistics made with the ranking's prompts, so they require the evaluated prompts to be those
prompts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from .errors import ActstoreError
from .evaluation import Tick, accuracy, check_run, run_spec, usable_prompts
from .masks import DEFAULT_PERCENTS, SCOPES, random_ranks, skill_mask
from .models import ActivationHook, PromptedModel
from .prompts import MAX_SEED
from .results import suppression_name
from .stats import activation_stats
from .store import Store
from .tasks import Split, TaskSpec, source_task

MODES = ("zero", "noise", "mean")


@dataclass(frozen=True)
class SuppressOptions:
    """What to suppress and how; checked on creation, so bad input fails before any model is loaded."""

    percents: tuple[float, ...] = DEFAULT_PERCENTS
    mode: str = "zero"
    scope: str = "layer"
    random_draws: int = 5
    random_seed: int = 0
    noise_scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.percents:
            raise ActstoreError("give at least one percentage to suppress")
        bad = [p for p in self.percents if not 0 <= p <= 100]  # NaN fails too
        if bad:
            raise ActstoreError(f"percentages must lie in 0–100, got {', '.join(map(str, bad))}")
        if len(set(self.percents)) != len(self.percents):
            raise ActstoreError(f"percentages repeat: {list(self.percents)}")
        if self.mode not in MODES:
            raise ActstoreError(f"unknown suppression mode '{self.mode}'; use {', '.join(MODES)}")
        if self.scope not in SCOPES:
            raise ActstoreError(f"unknown suppression scope '{self.scope}'; use {', '.join(SCOPES)}")
        if self.random_draws < 2:
            raise ActstoreError(
                f"the random control is reported as mean ± std over draws: --random-draws must be "
                f"at least 2, got {self.random_draws}"
            )
        if not (math.isfinite(self.noise_scale) and self.noise_scale > 0):
            raise ActstoreError(f"the noise scale must be a positive number, got {self.noise_scale}")
        if not (isinstance(self.random_seed, int) and 0 <= self.random_seed <= MAX_SEED):
            raise ActstoreError(
                f"the seed of the random controls must be an integer from 0 to {MAX_SEED}, got {self.random_seed!r}"
            )


def activation_spread(store: Store, task: str, split: str = "validation") -> np.ndarray:
    """(seed, layer, neuron) std of the activations over examples and prompt tokens (T5's decoder: its decoding
    step), every stack's layers in turn, from the moments kept during extraction (a bits-only store has them)."""
    return np.concatenate(
        [activation_stats(store, task, split, stack=stack)["std"].values for stack in store.stacks(task, split)], axis=1
    )


def baseline_mean(store: Store, task: str) -> np.ndarray:
    """(seed, layer, neuron) the train baseline (Eq. 2) averaged over the prompt tokens, every stack's layers in
    turn."""
    return np.concatenate(
        [store.baseline(task, stack).mean("token").values for stack in store.stacks(task, "train")], axis=1
    )


def suppression_edit(
    mask: np.ndarray,
    mode: str,
    values: np.ndarray | None = None,
    *,
    device: torch.device | str = "cpu",
    noise_seed: int = 0,
) -> Callable[[int], ActivationHook]:
    """``edit(seed_index)`` for ``evaluation.accuracy``: rewrite the masked neurons at every position.

    ``values`` (seed, layer, neuron) holds the replacement (mode ``mean``) or the noise std (mode ``noise``).
    Layers beyond the mask (T5's decoder under an encoder-only mask) are left alone.
    Noise comes from a generator seeded by (noise_seed, seed_index): a run repeats exactly with the same
    batch size on the same device.
    """
    index = [torch.from_numpy(np.flatnonzero(row)).to(device) for row in mask]
    table = None if values is None else torch.as_tensor(values, dtype=torch.float32, device=device)

    def for_seed(seed_index: int) -> ActivationHook:
        generator = torch.Generator(device=device)
        generator.manual_seed(int(np.random.SeedSequence([noise_seed, seed_index]).generate_state(1)[0]))

        def hook(layer: int, act: torch.Tensor) -> torch.Tensor | None:
            idx = index[layer] if layer < len(index) else None
            if idx is None or idx.numel() == 0:
                return None
            out = act.clone()
            here = idx.to(act.device)  # --device-map: the layer may be on another GPU than the model's first
            if mode == "zero":
                out[..., here] = 0
                return out
            assert table is not None  # modes mean and noise come with their values
            if mode == "mean":
                out[..., here] = table[seed_index, layer, idx].to(act.device, act.dtype)
            else:
                shape = (*act.shape[:-1], idx.numel())
                noise = torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)
                out[..., here] += (noise * table[seed_index, layer, idx]).to(act.device, act.dtype)
            return out

        return hook

    return for_seed


def suppress(
    store: Store,
    model: PromptedModel,
    task: TaskSpec,
    split: Split,
    options: SuppressOptions = SuppressOptions(),
    *,
    neurons_from: str | None = None,
    batch_size: int = 16,
    max_length: int = 128,
    tick: Tick | None = None,
) -> xr.Dataset:
    """Accuracy per seed and percentage with the skill neurons of ``neurons_from`` (default: the task itself)
    suppressed, and with as many random neurons per layer; stored under results/suppression.

    The prompts are the task's own, or its clean source's for an adversarial task (as ``evaluate``).
    Everything is checked before the first forward pass; the store is written only at the end.
    """
    check_run(model, split, batch_size, max_length)
    neurons_from = neurons_from or task.name
    reader = store.ranking_reader(neurons_from)
    ranking, ranked = reader.dataset, reader.spec
    source = source_task(task)
    prompts = usable_prompts(store, source, model, max_length)
    model.check_made_for(f"ranking of '{neurons_from}'", ranked.model)
    if len(prompts.seeds) < 2:
        raise ActstoreError(
            f"suppression is reported as mean ± std over seeds, but the prompts of '{source}' have "
            f"{len(prompts.seeds)} seed; tune at least 2"
        )
    values = None
    if options.mode != "zero":
        if ranked.prompt_checksum != prompts.checksum:
            raise ActstoreError(
                f"mode '{options.mode}' uses statistics of '{neurons_from}' made with other prompts "
                f"than those of '{source}'; use mode zero"
            )
        values = (
            baseline_mean(store, ranked.baseline_task)
            if options.mode == "mean"
            else options.noise_scale * activation_spread(store, neurons_from, ranked.split)
        )

    n_seeds, (n_layers, n_neurons) = len(prompts.seeds), reader.predictivity.shape
    unsuppressed: list[np.ndarray] = []

    def run(mask: np.ndarray, noise_seed: int) -> np.ndarray:
        if not mask.any():  # nothing to suppress: the plain accuracy, computed once
            if not unsuppressed:
                unsuppressed.append(
                    accuracy(model, task, split, prompts, batch_size=batch_size, max_length=max_length, tick=tick)
                )
            elif tick:
                tick(len(split) * n_seeds)
            return unsuppressed[0]
        edit = suppression_edit(mask, options.mode, values, device=model.device, noise_seed=noise_seed)
        return accuracy(model, task, split, prompts, batch_size=batch_size, max_length=max_length, edit=edit, tick=tick)

    draws = [random_ranks(n_layers, n_neurons, d, options.random_seed) for d in range(options.random_draws)]
    skill = np.empty((n_seeds, len(options.percents)))
    control = np.empty((options.random_draws, n_seeds, len(options.percents)))
    counts = np.empty((len(options.percents), n_layers), np.int64)
    for i, percent in enumerate(options.percents):
        mask = skill_mask(ranking, percent, options.scope)
        counts[i] = mask.sum(axis=1)
        skill[:, i] = run(mask, noise_seed=options.random_seed)
        for d, ranks in enumerate(draws):
            control[d, :, i] = run(ranks < counts[i][:, None], noise_seed=options.random_seed + 1 + d)

    spec = {
        "kind": "suppression",
        **run_spec(task, split, source, model, prompts, max_length),
        "neurons_from": neurons_from,
        "mode": options.mode,
        "scope": options.scope,
        "percents": [float(p) for p in options.percents],
        "random_draws": options.random_draws,
        "random_seed": options.random_seed,
        "noise_scale": options.noise_scale,
        "count_rule": "floor",
    }
    result = xr.Dataset(
        {
            "accuracy_skill": (("seed", "percent"), skill),
            "accuracy_random": (("draw", "seed", "percent"), control),
            "suppressed": (("percent", "layer"), counts),
        },
        coords={
            "seed": np.asarray(prompts.seeds),
            "percent": np.asarray(options.percents, dtype=np.float64),
            "draw": np.arange(options.random_draws),
            "layer": np.arange(n_layers),
            "layer_stack": ranking["layer_stack"],
        },
    )
    name = suppression_name(task.name, neurons_from, options.mode, options.scope)
    store.put_result("suppression", name, spec, result)
    return store.result("suppression", name)
