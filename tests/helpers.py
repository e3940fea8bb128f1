"""Small builders shared by the test modules."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from actstore import tasks
from actstore.cli.app import app
from actstore.extraction import ExtractOptions, extract
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.store import Store

SENTIMENT = tasks.custom_task("toy", ["sentence"], "label", ["negative", "positive"], ["negative", "positive"])


def toy_split(data_dir: Path, split: str, n: int) -> tasks.Split:
    """The first n real SST-2 sentences of a split, under the task name 'toy'."""
    files = {"train": data_dir / "sst2" / "train.tsv", "validation": data_dir / "sst2" / "dev.tsv"}
    return tasks.load_split(SENTIMENT, split, data_files=files).sample(n)


def run_toy(
    store_path: Path,
    model_dir: Path,
    data_dir: Path,
    *,
    n_train: int = 12,
    n_dev: int = 10,
    seeds: tuple[int, ...] = (0, 1),
    n_tokens: int = 3,
    **options,
) -> Store:
    """Extract toy train (stored) + validation with random prompts into a store."""
    model = load_model(str(model_dir))
    prompts = PromptSet.random(seeds, n_tokens, model.spec.hidden)
    store = Store(store_path, mode="a")
    store.put_prompts("toy", prompts.vectors, prompts.spec(model.spec))
    opts = ExtractOptions(**{"batch_size": 2, "block": 4, "store_train": True, "segment": 2, **options})
    for split, n in (("train", n_train), ("validation", n_dev)):
        extract(store, model, SENTIMENT, toy_split(data_dir, split, n), prompts, opts)
    return store


def extract_interrupted(
    store: Store,
    model_dir: Path,
    data_dir: Path,
    prompts: PromptSet,
    options: ExtractOptions,
    *,
    n_train: int = 12,
    n_dev: int = 10,
    after: int = 14,
    between: Callable[[str], None] = lambda split: None,
) -> None:
    """Extract toy train and validation, each stopped by Ctrl-C once ``after`` examples were reported, then
    resumed by the same call; ``between(split)`` looks at the store in between."""
    import pytest

    model = load_model(str(model_dir))
    for split, n in (("train", n_train), ("validation", n_dev)):
        seen = []

        def stop_after_some(examples: int, nbytes: int, seen: list[int] = seen) -> None:
            seen.append(examples)
            if sum(seen) >= after:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            extract(store, model, SENTIMENT, toy_split(data_dir, split, n), prompts, options, progress=stop_after_some)
        between(split)
        extract(store, model, SENTIMENT, toy_split(data_dir, split, n), prompts, options)


def reference_ranking(acts_train: np.ndarray, acts_dev: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Eq. 2–5 in plain numpy float64, straight from METHOD.md, independent of actstore's kernels."""
    baseline = acts_train.astype(np.float64).mean(axis=1)  # (seed, layer, token, neuron)
    above = acts_dev.astype(np.float64) > baseline[:, None]  # (seed, example, ...)
    accuracy = (above == labels[None, :, None, None, None].astype(bool)).mean(axis=1)
    per_token = np.maximum(accuracy, 1 - accuracy)
    return {"baseline": baseline, "accuracy": accuracy, "predictivity": per_token.max(axis=2).mean(axis=0)}


runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def digest(folder) -> str:
    """Every file of a store (its lock lies beside it): equal digests mean nothing stored was touched."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def one_error_line(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def experiment_toml(
    store: object,
    model: object,
    data_dir: object,
    *,
    tasks: tuple[str, ...] = ("sst2",),
    seeds: tuple[int, ...] = (0, 1),
    max_steps: int = 4,
    eval_every: int = 2,
    extract: str = "",
) -> str:
    """A small experiment file on a tiny model: 16 train / 12 dev examples, 3 prompt tokens."""
    return f"""store = "{store}"
model = "{model}"
seeds = {list(seeds)}
tasks = {json.dumps(list(tasks))}
[data]
train_limit = 16
dev_limit = 12
data_dir = "{data_dir}"
[tune]
n_tokens = 3
max_steps = {max_steps}
eval_every = {eval_every}
batch_size = 4
max_length = 32
[extract]
max_length = 32
batch_size = 4
block = 4
{extract}"""


def stored_arrays(store: Path) -> dict[str, np.ndarray]:
    """Every array of every group of a local store, read with plain zarr."""
    import zarr

    found = {}

    def walk(group: zarr.Group) -> None:
        for _, member in group.members():
            if isinstance(member, zarr.Group):
                walk(member)
            else:
                found[member.path] = np.asarray(member[...])

    walk(zarr.open_group(store, mode="r"))
    return found
