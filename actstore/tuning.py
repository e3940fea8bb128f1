"""Prompt Tuning: learn p soft tokens per seed in front of a frozen model, keep the best on dev.

Only the prompt is a parameter; the backbone runs in eval mode (no dropout) with ``requires_grad``
off, so its weights cannot change. Each seed is reproducible from the seed alone: the initial prompt
is ``PromptSet.random`` of that seed (the same one the random-prompt baseline uses) and the example
order of every epoch is a permutation drawn from ``numpy.random.default_rng(seed)``.

A finished seed is stored at once (results/tuning-seed/<task>:<seed>), so a crash costs at most the seed in
progress, and ranks of a launch can each tune their share of the seeds; when every seed is in, all of them are
published as results/tuning/<task> and the prompts as prompts/<task>,
where extraction, evaluation and the analyses read them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import xarray as xr

from .checks import check_positive, check_positive_number
from .errors import ActstoreError
from .evaluation import scores
from .launch import Shard
from .models import PromptedModel
from .prompts import PromptSet, check_seeds
from .specs import ModelSpec, from_attrs, to_attrs
from .store import Store
from .tasks import Split, TaskSpec, check_examples

#: step(seed, step, loss): called after every optimiser step
StepReport = Callable[[int, int, float], None]
#: evaluated(seed, step, dev_accuracy): called after every evaluation on dev, step 0's (the initial prompt) included
EvalReport = Callable[[int, int, float], None]


@dataclass(frozen=True)
class TuneOptions:
    """Hyper-parameters (the papers' defaults; ``lr=None`` picks 1e-3, or 5e-3 for T5)."""

    n_tokens: int = 100
    lr: float | None = None
    weight_decay: float = 1e-5
    batch_size: int = 16
    grad_accum: int = 1
    max_length: int = 128
    max_steps: int = 1000
    eval_every: int = 100
    patience: int = 5
    eval_batch_size: int = 32

    def __post_init__(self) -> None:
        if isinstance(self.n_tokens, bool) or not isinstance(self.n_tokens, int) or self.n_tokens <= 0:
            raise ActstoreError(f"prompt length must be positive, got {self.n_tokens!r}")
        check_positive(
            batch_size=self.batch_size,
            grad_accum=self.grad_accum,
            max_length=self.max_length,
            max_steps=self.max_steps,
            eval_every=self.eval_every,
            patience=self.patience,
            eval_batch_size=self.eval_batch_size,
        )
        if self.lr is not None:
            check_positive_number(lr=self.lr)
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ActstoreError(f"weight-decay must be a number ≥ 0, got {self.weight_decay!r}")
        if self.batch_size % self.grad_accum:
            raise ActstoreError(
                f"batch size ({self.batch_size}) must be a multiple of --grad-accum ({self.grad_accum})"
            )

    def for_model(self, model: PromptedModel) -> TuneOptions:
        """Fill in the architecture's default learning rate."""
        return self if self.lr is not None else replace(self, lr=5e-3 if model.is_t5 else 1e-3)


@dataclass(frozen=True)
class SeedResult:
    """One seed's best prompt and how training went."""

    seed: int
    prompt: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    dev_accuracy: np.ndarray
    best_step: int
    best_accuracy: float
    wall_s: float


def tune_seed(
    model: PromptedModel,
    task: TaskSpec,
    train: Split,
    dev: Split,
    seed: int,
    options: TuneOptions,
    on_step: StepReport | None = None,
    on_eval: EvalReport | None = None,
) -> SeedResult:
    """Train one seed's prompt with AdamW on the label-word cross-entropy; early-stop on dev accuracy."""
    options = options.for_model(model)
    assert options.lr is not None  # ``for_model`` filled it in
    start = time.perf_counter()
    words = model.label_ids(task)
    torch.manual_seed(seed)
    init = model.layout.initial_prompt(model, PromptSet.random([seed], options.n_tokens, model.spec.hidden).vectors[0])
    prompt = torch.nn.Parameter(torch.from_numpy(init).to(model.device))
    optimiser = torch.optim.AdamW([prompt], lr=options.lr, weight_decay=options.weight_decay)
    labels = torch.from_numpy(train.labels)
    batches = _batches(len(train), options.batch_size, seed)
    micro = options.batch_size // options.grad_accum
    best = (_dev_accuracy(model, dev, prompt, words, options), 0, prompt.detach().cpu().numpy().copy())
    if on_eval:
        on_eval(seed, 0, best[0])
    steps, losses, accs = [0], [float("nan")], [best[0]]
    since_best, running = 0, []
    for step in range(1, options.max_steps + 1):
        rows = next(batches)
        optimiser.zero_grad(set_to_none=True)
        total = 0.0
        for lo in range(0, len(rows), micro):
            part = rows[lo : lo + micro]
            batch = model.encode([train.texts[i] for i in part], options.max_length, train.task)
            logits = model.label_logits(batch, prompt, words)
            loss = (
                torch.nn.functional.cross_entropy(logits.float(), labels[part].to(model.device)) * len(part) / len(rows)
            )
            loss.backward()
            total += float(loss.detach())
        optimiser.step()
        running.append(total)
        if on_step:
            on_step(seed, step, total)
        if step % options.eval_every == 0 or step == options.max_steps:
            acc = _dev_accuracy(model, dev, prompt, words, options)
            steps.append(step)
            losses.append(float(np.mean(running)))
            accs.append(acc)
            running = []
            if on_eval:
                on_eval(seed, step, acc)
            if acc > best[0]:
                best, since_best = (acc, step, prompt.detach().cpu().numpy().copy()), 0
            else:
                since_best += 1
                if since_best >= options.patience:
                    break
    return SeedResult(
        seed,
        best[2],
        np.asarray(steps),
        np.asarray(losses),
        np.asarray(accs),
        best[1],
        best[0],
        time.perf_counter() - start,
    )


def _batches(n: int, size: int, seed: int):
    """Endless batches of example indices, a fresh seeded permutation every epoch."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        for lo in range(0, n - size + 1 if n >= size else 1, size):
            yield order[lo : lo + size]


def _dev_accuracy(
    model: PromptedModel, dev: Split, prompt: torch.Tensor, words: list[int], options: TuneOptions
) -> float:
    logits = scores(
        model, dev, prompt.detach(), words, batch_size=options.eval_batch_size, max_length=options.max_length
    )
    return float((logits.argmax(axis=1) == dev.labels).mean())


def tune_spec(
    model: PromptedModel, task: TaskSpec, train: Split, dev: Split, seeds: Sequence[int], options: TuneOptions
) -> dict:
    """Everything that determines the tuned prompts: a stored run resumes only under the same spec."""
    return {
        "kind": "tuning",
        "task": task.name,
        "model": to_attrs(model.spec),
        "seeds": list(seeds),
        "options": to_attrs(options.for_model(model)),
        "label_words": list(task.label_words),
        "label_ids": model.label_ids(task),
        "train": {"n_examples": len(train), "fingerprint": train.fingerprint},
        "dev": {"n_examples": len(dev), "fingerprint": dev.fingerprint},
    }


def check_tune(
    model: PromptedModel, task: TaskSpec, train: Split, dev: Split, seeds: Sequence[int], options: TuneOptions
) -> tuple[int, ...]:
    """Everything about a tuning run that can be checked without its store (so before a command opens, and so
    creates, one): seeds, both splits, the prompt's fit and the label words. Returns the seeds."""
    seeds = check_seeds(seeds)
    for split in (train, dev):
        check_examples(task, split)
    PromptSet.random(seeds[:1], options.n_tokens, model.spec.hidden).check_fits(model.spec, options.max_length)
    model.check_length(options.max_length, len(train.texts[0]))
    model.label_ids(task)
    return seeds


def tune(
    store: Store,
    model: PromptedModel,
    task: TaskSpec,
    train: Split,
    dev: Split,
    seeds: Sequence[int],
    options: TuneOptions = TuneOptions(),
    on_step: StepReport | None = None,
    on_seed: Callable[[SeedResult], None] | None = None,
    shard: Shard = Shard(),
    on_eval: EvalReport | None = None,
) -> xr.Dataset:
    """Tune every seed (of this rank's share) not yet in the store, each stored as it finishes; once every seed
    is in, publish results/tuning/<task> and the prompts (under a launcher: the last rank to finish does).
    Returns the tuning results of the seeds stored so far."""
    seeds = list(check_tune(model, task, train, dev, seeds, options))
    spec = tune_spec(model, task, train, dev, seeds, options)
    existing = store.prompt_spec(task.name)
    if existing is not None and not existing.source.startswith("tuned"):
        raise ActstoreError(
            f"{store.location} already holds {existing.source} prompts for '{task.name}'; use another store"
        )
    done = _stored_seeds(store, task.name, spec)
    for i, seed in enumerate(seeds):
        if seed in done or not shard.owns(i):
            continue
        result = tune_seed(model, task, train, dev, seed, options, on_step, on_eval)
        store.put_result(SEED_KIND, f"{task.name}:{seed}", spec, _tuning_dataset([result]))
        done[seed] = result
        if on_seed:
            on_seed(result)
    done.update(_stored_seeds(store, task.name, spec))  # the other ranks' seeds
    if all(s in done for s in seeds) and store.prompt_spec(task.name) is None:
        store.put_result("tuning", task.name, spec, _tuning_dataset([done[s] for s in seeds]))
        prompts = PromptSet(
            np.stack([done[s].prompt for s in seeds]), tuple(seeds), f"tuned:{store.name}/results/tuning/{task.name}"
        )
        store.put_prompts(task.name, prompts.vectors, prompts.spec(model.spec))
    return _tuning_dataset([done[s] for s in seeds if s in done]).assign_attrs(spec=spec)


#: each seed's results as it finishes, before every seed is in: results/tuning-seed/<task>:<seed>
SEED_KIND = "tuning-seed"


def _stored_seeds(store: Store, task: str, spec: dict) -> dict[int, SeedResult]:
    """Seeds already tuned under this very spec, published or stored one by one (other settings are refused, not
    overwritten)."""
    out = {}
    names = [n for n in store.results(SEED_KIND) if n.rpartition(":")[0] == task]
    for old in [store.find_result("tuning", task)] + [store.result(SEED_KIND, n) for n in names]:
        if old is not None:
            out.update(_seed_results(store, task, spec, old))
    return out


def _seed_results(store: Store, task: str, spec: dict, old: xr.Dataset) -> dict[int, SeedResult]:
    # label_ids: not kept before the ids were refused unless one token, so the same ids; the model's later fields:
    # their defaults
    stored = {
        "label_ids": spec["label_ids"],
        **old.attrs["spec"],
        "model": to_attrs(from_attrs(ModelSpec, old.attrs["spec"]["model"])),
    }
    if stored != spec:
        changed = sorted(k for k in spec if stored.get(k) != spec[k])
        raise ActstoreError(
            f"{store.location} holds prompts of '{task}' tuned with other settings "
            f"({', '.join(changed)} differ); use another store or the original settings"
        )
    out = {}
    for s in old["seed"].values.tolist():
        row = old.sel(seed=s)
        keep = np.isfinite(row["dev_accuracy"].values)
        out[s] = SeedResult(
            s,
            row["prompt"].values,
            row["curve_step"].values[keep].astype(int),
            row["loss"].values[keep],
            row["dev_accuracy"].values[keep],
            int(row["best_step"]),
            float(row["best_accuracy"]),
            float(row["wall_s"]),
        )
    return out


def _tuning_dataset(results: list[SeedResult]) -> xr.Dataset:
    """Finished seeds as one labelled dataset: prompt (seed, token, hidden) and curves (seed, evaluation)."""
    width = max(len(r.steps) for r in results)

    def padded(values: np.ndarray, fill: float) -> np.ndarray:
        return np.concatenate([values.astype(np.float64), np.full(width - len(values), fill)])

    return xr.Dataset(
        {
            "prompt": (("seed", "token", "hidden"), np.stack([r.prompt for r in results])),
            "curve_step": (("seed", "evaluation"), np.stack([padded(r.steps, -1) for r in results]).astype(np.int64)),
            "loss": (("seed", "evaluation"), np.stack([padded(r.loss, np.nan) for r in results])),
            "dev_accuracy": (("seed", "evaluation"), np.stack([padded(r.dev_accuracy, np.nan) for r in results])),
            "best_step": (("seed",), np.array([r.best_step for r in results])),
            "best_accuracy": (("seed",), np.array([r.best_accuracy for r in results])),
            "wall_s": (("seed",), np.array([r.wall_s for r in results])),
        },
        coords={"seed": np.array([r.seed for r in results], dtype=np.int64)},
    )
