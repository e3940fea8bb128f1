"""Label-word predictions of a prompted model: the accuracy of a prompt set on a split.

Tuning (dev accuracy per evaluation), ``actstore eval`` (accuracy per seed, own or another task's
prompts), transfer and suppression (with an ``edit`` of the FFN activations) all score here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from .checks import check_positive
from .errors import ActstoreError
from .models import ActivationHook, PromptedModel
from .prompts import PromptSet
from .results import evaluation_name
from .specs import to_attrs
from .store import Store
from .tasks import Split, TaskSpec, source_task

#: progress(examples): called after every batch
Tick = Callable[[int], None]


@torch.inference_mode()
def scores(
    model: PromptedModel,
    split: Split,
    prompt: torch.Tensor,
    word_ids: list[int],
    *,
    batch_size: int = 16,
    max_length: int = 128,
    edit: ActivationHook | None = None,
    tick: Tick | None = None,
) -> np.ndarray:
    """(examples, classes) label-word logits of one prompt (p, hidden); ``edit`` may rewrite FFN activations."""
    out = np.empty((len(split), len(word_ids)), np.float32)
    for lo in range(0, len(split), batch_size):
        batch = model.encode(split.texts[lo : lo + batch_size], max_length, split.task)
        if edit is None:
            logits = model.label_logits(batch, prompt, word_ids)
        else:
            with model.ffn_hooks(edit):
                logits = model.label_logits(batch, prompt, word_ids)
        out[lo : lo + len(logits)] = logits.float().cpu().numpy()
        if tick:
            tick(len(logits))
    return out


def accuracy(
    model: PromptedModel,
    task: TaskSpec,
    split: Split,
    prompts: PromptSet,
    *,
    batch_size: int = 16,
    max_length: int = 128,
    edit: Callable[[int], ActivationHook] | None = None,
    tick: Tick | None = None,
) -> np.ndarray:
    """Per seed of ``prompts``: the fraction of ``split`` whose highest label word is the label.

    ``edit(seed_index)`` gives the activation edit for that seed's run (suppression), if any.
    """
    words = model.label_ids(task)
    result = np.empty(len(prompts.seeds))
    for s in range(len(prompts.seeds)):
        prompt = torch.from_numpy(prompts.vectors[s])
        logits = scores(
            model,
            split,
            prompt,
            words,
            batch_size=batch_size,
            max_length=max_length,
            edit=None if edit is None else edit(s),
            tick=tick,
        )
        result[s] = float((logits.argmax(axis=1) == split.labels).mean())
    return result


def evaluate(
    store: Store,
    model: PromptedModel,
    task: TaskSpec,
    split: Split,
    *,
    prompts_from: str | None = None,
    batch_size: int = 16,
    max_length: int = 128,
    tick: Tick | None = None,
) -> xr.Dataset:
    """Accuracy per seed of the prompts the store holds for ``prompts_from`` (default: the task's own, or its
    clean source's for an adversarial task) on ``split``, stored as results/evaluation/<task>@<prompts_from>."""
    check_run(model, split, batch_size, max_length)
    source = prompts_from or source_task(task)
    prompts = usable_prompts(store, source, model, max_length)
    acc = accuracy(model, task, split, prompts, batch_size=batch_size, max_length=max_length, tick=tick)
    spec = {"kind": "evaluation", **run_spec(task, split, source, model, prompts, max_length)}
    result = xr.Dataset({"accuracy": (("seed",), acc)}, coords={"seed": np.asarray(prompts.seeds)})
    store.put_result("evaluation", evaluation_name(task.name, source), spec, result)
    return store.result("evaluation", evaluation_name(task.name, source))


def check_run(model: PromptedModel, split: Split, batch_size: int, max_length: int) -> None:
    """Inference settings a run can take: positive sizes, room for the text, and examples to score."""
    check_positive(batch_size=batch_size, max_length=max_length)
    if not len(split):
        raise ActstoreError(f"split '{split.name}' of task '{split.task}' is empty ({split.source})")
    model.check_length(max_length, len(split.texts[0]))


def usable_prompts(store: Store, source: str, model: PromptedModel, max_length: int) -> PromptSet:
    """The prompts the store holds for ``source``, checked to fit ``model`` and to have been made for it."""
    prompts = PromptSet.stored(store, source)
    if prompts is None:
        raise ActstoreError(
            f"{store.location} holds no prompts for task '{source}': run actstore tune --task {source} first"
        )
    prompts.check_fits(model.spec, max_length)
    made_for = store.prompt_spec(source)
    assert made_for is not None  # ``PromptSet.stored`` read them a moment ago
    model.check_made_for(f"prompts of '{source}'", made_for.model)
    return prompts


def check_transfer_runs(
    store: Store,
    model: PromptedModel,
    data: Mapping[str, Split],
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int,
    max_length: int,
) -> None:
    """Check every (data task, prompts task) evaluation of ``transfer_pairs`` before the first is run and stored."""
    for name, prompts in pairs:
        check_run(model, data[name], batch_size, max_length)
        usable_prompts(store, prompts, model, max_length)


def run_spec(
    task: TaskSpec, split: Split, source: str, model: PromptedModel, prompts: PromptSet, max_length: int
) -> dict:
    """What every inference result records: the data, the prompts and the model it ran."""
    return {
        "task": task.name,
        "split": split.name,
        "prompts_from": source,
        "model": to_attrs(model.spec),
        "label_ids": model.label_ids(task),
        "prompt_checksum": prompts.checksum,
        "seeds": list(prompts.seeds),
        "n_examples": len(split),
        "data_fingerprint": split.fingerprint,
        "max_length": max_length,
    }
