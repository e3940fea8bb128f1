"""Experiment files: tune → extract → rank for a list of tasks, skipping what the store already holds.

An experiment is a TOML file (see ``data/experiments/``)::

    store = "runs/demo.zarr"
    model = "all-minilm-l6-v2"
    seeds = [0, 1, 2]
    tasks = ["rotten_tomatoes"]          # adversarial tasks use their clean source's prompts and baseline
    [tune]      # TuneOptions fields
    [extract]   # ExtractOptions fields
    [data]      # train_limit / dev_limit: a fixed sample of N examples of a split (Split.sample);
                # baseline_limit: a smaller sample of that train split for the baseline only; data_dir

The file is checked against ``schemas/experiment-v1.json`` (unknown keys and wrong types are errors), and all
data against the model, before the store is opened. Every step is resumable on its own (tuned seeds, extraction blocks, rankings are stored as they finish),
so running the same file again after a crash, or after adding a task, only does the missing work.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np

from . import tasks
from .checks import existing_store
from .errors import ActstoreError
from .extraction import ExtractOptions, extract, owned_examples, plan
from .launch import Shard, wait_until
from .models import PromptedModel, load_model
from .prompts import PromptSet
from .ranking import model_accuracy, rank, top_neurons
from .store import Store, StoreLocation
from .tuning import TuneOptions, check_tune, tune

#: the version of ``schemas/experiment-v<N>.json`` experiment files are checked against
SCHEMA_VERSION = 1

#: progress(description, total) → a context yielding advance(n): the CLI draws bars, the library counts
ProgressFactory = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


@contextmanager
def _silent(description: str, total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file."""

    store: str | StoreLocation  # a path or a URL (s3://bucket/prefix, ...)
    model: str
    seeds: tuple[int, ...]
    tasks: tuple[str, ...]
    tune: TuneOptions
    extract: ExtractOptions
    train_limit: int | None = None
    dev_limit: int | None = None
    baseline_limit: int | None = None
    data_dir: str | None = None

    @classmethod
    def load(cls, path: str | Path) -> "Experiment":
        """Parse and check a file against ``schemas/experiment-v1.json``: an unknown key or a value of the wrong
        type is one error naming the key, before anything runs."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except (FileNotFoundError, IsADirectoryError):
            raise ActstoreError(f"experiment file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ActstoreError(f"{path} is not valid TOML: {exc}") from None
        _validate(raw, path)
        for name in raw["tasks"]:
            tasks.get_task(name)
        data = raw.get("data", {})
        return cls(store=raw["store"], model=raw["model"], seeds=tuple(raw["seeds"]), tasks=tuple(raw["tasks"]),
                   tune=_section(TuneOptions, raw, "tune", path), extract=_section(ExtractOptions, raw, "extract", path),
                   train_limit=data.get("train_limit"), dev_limit=data.get("dev_limit"),
                   baseline_limit=data.get("baseline_limit"), data_dir=data.get("data_dir"))

    def ordered_tasks(self) -> list[str]:
        """Clean tasks first, so an adversarial task finds its source's prompts and baseline."""
        return sorted(self.tasks, key=lambda t: tasks.get_task(t).clean_source is not None)


@cache
def _schema() -> dict:
    return json.loads(resources.files("actstore.schemas").joinpath(f"experiment-v{SCHEMA_VERSION}.json").read_text())


def _validate(raw: dict, path: Path) -> None:
    """One line for the most relevant schema violation, naming the key (an unknown key: the known ones too)."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(_schema()).iter_errors(raw))
    if error is None:
        return
    where = ".".join(map(str, error.absolute_path))
    if error.validator == "additionalProperties":
        known = sorted(error.schema["properties"])
        unknown = sorted(set(error.instance) - set(known))
        section = f" in [{where}]" if where else ""
        raise ActstoreError(f"{path}: unknown {error.schema['title']} setting(s) {unknown}{section}; known: {known}")
    raise ActstoreError(f"{path}: {where or '(top)'}: {error.message}")


def _section(cls: type, raw: dict, name: str, path: Path):
    """A section's options; their own checks (e.g. a block that is no multiple of the batch size) name the section."""
    try:
        return cls(**raw.get(name, {}))
    except ActstoreError as exc:
        raise ActstoreError(f"{path}: [{name}] {exc}") from None


@dataclass(frozen=True)
class TaskReport:
    """What one task of an experiment ended with."""

    task: str
    prompts_from: str
    dev_accuracy: dict[int, float]
    top: list[dict]


def run(experiment: Experiment, progress: ProgressFactory = _silent, say: Callable[[str], None] = lambda line: None,
        model: PromptedModel | None = None) -> list[TaskReport]:
    """Run (or finish) every step of every task; returns per task its accuracy per seed and top skill neurons.
    All data is loaded and checked against the model before the store is opened (so a bad run creates none)."""
    shard = Shard.from_env()
    model = model or load_model(experiment.model, device=shard.device(None))
    loaded = {name: _load(experiment, tasks.get_task(name)) for name in experiment.ordered_tasks()}
    check(experiment, model, loaded)
    store = Store(experiment.store, mode="a")
    reports = []
    with store.writing(shared=shard.sharded):
        for name, (train, dev) in loaded.items():
            report = _run_task(experiment, store, model, tasks.get_task(name), train, dev, progress, say, shard)
            reports += [report] if report else []
    return reports


#: a task's loaded splits: train (None for an adversarial task, which is not tuned) and dev
Loaded = tuple[tasks.Split | None, tasks.Split]


def _load(experiment: Experiment, task: tasks.TaskSpec) -> Loaded:
    def split(name: str) -> tasks.Split:
        loaded = tasks.load_split(task, name, data_dir=experiment.data_dir)
        limit = experiment.train_limit if name == "train" else experiment.dev_limit
        return loaded.sample(limit) if limit else loaded

    return (None if task.clean_source else split("train")), split("validation")


def _to_extract(experiment: Experiment, train: tasks.Split | None, dev: tasks.Split) -> list[tasks.Split]:
    """A clean task's train sample for the baseline and its dev split; an adversarial task's dev split."""
    if train is None:
        return [dev]
    return [train.sample(experiment.baseline_limit) if experiment.baseline_limit else train, dev]


def check(experiment: Experiment, model: PromptedModel, loaded: Mapping[str, Loaded]) -> None:
    """What every step will need, checked up front: tuning's seeds, splits and prompt fit, every extraction's plan,
    and an adversarial task's clean source (in the experiment, or its prompts in the store already)."""
    existing = existing_store(experiment.store)
    for name, (train, dev) in loaded.items():
        task = tasks.get_task(name)
        source = tasks.source_task(task)
        held = existing.prompts(source) if existing is not None and source not in loaded else None
        if train is not None:
            check_tune(model, task, train, dev, experiment.seeds, experiment.tune)
        elif source not in loaded and held is None:
            raise ActstoreError(f"adversarial task '{name}' needs the prompts of '{source}': add it to the experiment")
        prompts = held if held is not None else PromptSet.random(experiment.seeds, experiment.tune.n_tokens, model.spec.hidden)
        for split in _to_extract(experiment, train, dev):
            plan(model, task, split, prompts, experiment.extract)


def _run_task(experiment: Experiment, store: Store, model: PromptedModel, task: tasks.TaskSpec,
              train: tasks.Split | None, dev: tasks.Split, progress: ProgressFactory,
              say: Callable[[str], None], shard: Shard) -> TaskReport | None:
    """Tune, extract and rank one task; under a launcher every rank tunes and extracts its share, and rank 0 ranks
    once every rank's share is in (the others return None)."""
    source = tasks.source_task(task)
    if train is not None:
        mine = sum(shard.owns(i) for i in range(len(experiment.seeds)))
        with progress(f"tune {task.name}", mine * experiment.tune.max_steps) as advance:
            tune(store, model, task, train, dev, experiment.seeds, experiment.tune,
                 on_step=lambda seed, step, loss: advance(1), shard=shard)
        wait_until(lambda: store.prompts(source) is not None, f"the prompts of '{source}'", shard)
        say(f"{task.name}: prompts tuned for seeds {list(experiment.seeds)}")
    splits = _to_extract(experiment, train, dev)
    prompts = store.prompts(source)
    for split in splits:
        planned = plan(model, task, split, prompts, experiment.extract)
        with progress(f"extract {task.name}/{split.name}", owned_examples(planned, shard)) as advance:
            extract(store, model, task, split, prompts, experiment.extract, progress=lambda n, nbytes: advance(n),
                    shard=shard)
    if shard.rank:
        say(f"{task.name}: rank {shard.rank} of {shard.world} did its share; rank 0 ranks and reports")
        return None
    wait_until(lambda: all(store.complete(task.name, s.name) for s in splits), "every rank's extraction", shard)
    say(f"{task.name}: activations extracted ({', '.join(f'{s.name} {len(s)}' for s in splits)} examples)")
    ranked = store.ranking_spec(task.name)
    if ranked is None or ranked.prompt_checksum != prompts.checksum or ranked.n_examples != len(dev):
        with progress(f"rank {task.name}", 1) as advance:
            rank(store, task.name)
            advance(1)
    accuracy = model_accuracy(store, task.name)
    return TaskReport(task.name, source, dict(zip(prompts.seeds, np.round(accuracy, 6).tolist())),
                      top_neurons(store.ranking(task.name), 10))
