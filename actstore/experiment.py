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

Every step is resumable on its own (tuned seeds, extraction blocks, rankings are stored as they finish),
so running the same file again after a crash, or after adding a task, only does the missing work.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from . import tasks
from .errors import ActstoreError
from .extraction import ExtractOptions, extract
from .models import PromptedModel, load_model
from .ranking import model_accuracy, rank, top_neurons
from .store import Store
from .tuning import TuneOptions, tune

#: progress(description, total) → a context yielding advance(n): the CLI draws bars, the library counts
ProgressFactory = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


@contextmanager
def _silent(description: str, total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file."""

    store: Path
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
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ActstoreError(f"experiment file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ActstoreError(f"{path} is not valid TOML: {exc}") from None
        missing = [k for k in ("store", "model", "seeds", "tasks") if k not in raw]
        if missing:
            raise ActstoreError(f"{path} lacks {', '.join(missing)}")
        data = raw.get("data", {})
        for name in tasks_of(raw):
            tasks.get_task(name)
        return cls(store=Path(raw["store"]), model=raw["model"], seeds=tuple(raw["seeds"]), tasks=tasks_of(raw),
                   tune=_options(TuneOptions, raw.get("tune", {}), path), extract=_options(ExtractOptions, raw.get("extract", {}), path),
                   train_limit=data.get("train_limit"), dev_limit=data.get("dev_limit"),
                   baseline_limit=data.get("baseline_limit"), data_dir=data.get("data_dir"))

    def ordered_tasks(self) -> list[str]:
        """Clean tasks first, so an adversarial task finds its source's prompts and baseline."""
        return sorted(self.tasks, key=lambda t: tasks.get_task(t).clean_source is not None)


def tasks_of(raw: dict) -> tuple[str, ...]:
    names = raw["tasks"]
    if not isinstance(names, list) or not names or len(set(names)) != len(names):
        raise ActstoreError(f"'tasks' must be a list of distinct task names, got {names!r}")
    return tuple(names)


def _options(cls: type, values: dict, path: Path):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ActstoreError(f"{path}: unknown {cls.__name__} setting(s) {unknown}; known: {sorted(known)}")
    return cls(**values)


@dataclass(frozen=True)
class TaskReport:
    """What one task of an experiment ended with."""

    task: str
    prompts_from: str
    dev_accuracy: dict[int, float]
    top: list[dict]


def run(experiment: Experiment, progress: ProgressFactory = _silent, say: Callable[[str], None] = lambda line: None,
        model: PromptedModel | None = None) -> list[TaskReport]:
    """Run (or finish) every step of every task; returns per task its accuracy per seed and top skill neurons."""
    model = model or load_model(experiment.model)
    store = Store(experiment.store, mode="a")
    reports = []
    with store.writing():
        for name in experiment.ordered_tasks():
            reports.append(_run_task(experiment, store, model, tasks.get_task(name), progress, say))
    return reports


def _split(experiment: Experiment, task: tasks.TaskSpec, split: str) -> tasks.Split:
    loaded = tasks.load_split(task, split, data_dir=experiment.data_dir)
    limit = experiment.train_limit if split == "train" else experiment.dev_limit
    return loaded.sample(limit) if limit else loaded


def _run_task(experiment: Experiment, store: Store, model: PromptedModel, task: tasks.TaskSpec,
              progress: ProgressFactory, say: Callable[[str], None]) -> TaskReport:
    dev = _split(experiment, task, "validation")
    source = tasks.source_task(task)
    if task.clean_source is None:
        train = _split(experiment, task, "train")
        with progress(f"tune {task.name}", len(experiment.seeds) * experiment.tune.max_steps) as advance:
            tune(store, model, task, train, dev, experiment.seeds, experiment.tune,
                 on_step=lambda seed, step, loss: advance(1))
        say(f"{task.name}: prompts tuned for seeds {list(experiment.seeds)}")
        splits = [train.sample(experiment.baseline_limit) if experiment.baseline_limit else train, dev]
    else:
        if store.prompts(source) is None:
            raise ActstoreError(f"adversarial task '{task.name}' needs the prompts of '{source}': add it to the experiment")
        splits = [dev]
    prompts = store.prompts(source)
    for split in splits:
        with progress(f"extract {task.name}/{split.name}", len(split) * len(prompts.seeds)) as advance:
            extract(store, model, task, split, prompts, experiment.extract, progress=lambda n, nbytes: advance(n))
    say(f"{task.name}: activations extracted ({', '.join(f'{s.name} {len(s)}' for s in splits)} examples)")
    ranked = store.ranking_spec(task.name)
    if ranked is None or ranked.prompt_checksum != prompts.checksum or ranked.n_examples != len(dev):
        with progress(f"rank {task.name}", 1) as advance:
            rank(store, task.name)
            advance(1)
    accuracy = model_accuracy(store, task.name)
    return TaskReport(task.name, source, dict(zip(prompts.seeds, np.round(accuracy, 6).tolist())),
                      top_neurons(store.ranking(task.name), 10))
