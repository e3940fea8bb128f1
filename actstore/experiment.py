"""Experiment files: the papers' experiments as one command, skipping what the store already holds.

An experiment is a TOML file (see ``data/experiments/``)::

    store = "runs/paper-{model}.zarr"    # {model}: the model's name (its last path part)
    models = ["roberta-base", "t5-base"] # or model = "..."; each model runs in turn, into a store of its own
    layout = "pt"                        # the input layout (actstore.layouts): pt (default), sn or peft
    seeds = [0, 1, 2]
    tasks = ["sst2", "adv_sst2"]         # adversarial tasks use their clean source's prompts and baseline
    [prompts]   # from = "tune" (default: [tune]) or "robust-neurons" with dir = the released tree
    [tune]      # TuneOptions fields
    [extract]   # ExtractOptions fields (its batch_size and max_length also serve the analyses below)
    [data]      # train_limit / dev_limit: a fixed sample of N examples of a split (Split.sample);
                # baseline_limit: a smaller sample of that train split for the baseline only; data_dir
    [suppress]  # tasks, modes, cross_modes, percents, scope, random_draws, random_seed, noise_scale
    [transfer]  # tasks
    [correlate] # tasks, normalize
    [compare_adversarial]  # tasks, percents, scope
    [report]    # out, neurons

Per model: every clean task's prompts (tuned, or imported from a release), its train baseline and dev activations
extracted, every task ranked; then, in the order above, the analyses whose sections are present. The file is
checked against ``schemas/experiment-v1.json`` (unknown keys and wrong types are errors), and all data against the
model, before the store is opened. Every step is resumable on its own (tuned seeds, extraction blocks, rankings,
suppression curves and transfer evaluations are stored as they finish), so running the same file again after a
crash, or after adding a task, only does the missing work; the cheap analyses (correlate, compare_adversarial,
report) are redone from the store each time.

``overrides`` (``actstore run --set KEY=VALUE``) change the file's values before it is checked: ``data.dev_limit=8``
sets a key of a section, ``tasks=["sst2"]`` takes any TOML value (a bare word is a string), and ``model`` and
``models`` replace each other.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from . import analysis, tasks
from .checks import existing_store
from .errors import ActstoreError
from .evaluation import check_transfer_runs, evaluate, run_spec
from .extraction import ExtractOptions, extract, owned_examples, plan
from .launch import Shard, wait_until
from .models import PromptedModel, load_model
from .prompts import RN_LAYOUT, PromptSet, robust_neurons_seeds
from .ranking import model_accuracy, rank, top_neurons
from .results import suppression_name
from .store import Store, StoreLocation
from .suppression import SuppressOptions, suppress
from .tuning import TuneOptions, check_tune, tune

#: the version of ``schemas/experiment-v<N>.json`` experiment files are checked against
SCHEMA_VERSION = 1
#: where the clean tasks' prompts come from (``[prompts] from``)
PROMPT_SOURCES = ("tune", "robust-neurons")
#: what ``{model}`` in ``store`` and ``report.out`` stands for: the model's last path part, these characters kept
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")

#: progress(description, total) → a context yielding advance(n, status="", milestone=False): the CLI draws bars (or
#: prints lines), the library counts and says where it is (a milestone: a line worth keeping, e.g. an evaluation)
ProgressFactory = Callable[[str, int], AbstractContextManager[Callable[..., None]]]


@contextmanager
def _silent(description: str, total: int) -> Iterator[Callable[..., None]]:
    yield lambda n, status="", milestone=False: None


@dataclass(frozen=True)
class PromptSource:
    """Where the clean tasks' prompts come from: tuned here (``tune``) or a released tree (``robust-neurons``)."""

    kind: str = "tune"
    dir: str | None = None


@dataclass(frozen=True)
class SuppressPlan:
    """``[suppress]``: ``tasks`` (None: the clean ones) with their own neurons in each of ``modes``; cross suppression
    in each of ``cross_modes``; ``options`` hold the percentages, scope, draws and noise (their mode is set per run)."""

    tasks: tuple[str, ...] | None = None
    modes: tuple[str, ...] = ("zero",)
    cross_modes: tuple[str, ...] = ("zero",)
    options: SuppressOptions = SuppressOptions()


@dataclass(frozen=True)
class AnalysisPlan:
    """``[transfer]``, ``[correlate]``, ``[compare_adversarial]``: their tasks (None: the section's default) and
    settings."""

    tasks: tuple[str, ...] | None = None
    normalize: tuple[str, ...] = ("none",)
    percents: tuple[float, ...] = analysis.ADVERSARIAL_PERCENTS
    scope: str = "layer"


@dataclass(frozen=True)
class ReportPlan:
    out: str
    neurons: int = 10


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file; ``models`` run one after another (``each_model``), each into its own store."""

    store: str | StoreLocation  # a path or a URL (s3://bucket/prefix, ...); {model} stands for the model
    models: tuple[str, ...]
    seeds: tuple[int, ...]
    tasks: tuple[str, ...]
    tune: TuneOptions
    extract: ExtractOptions
    train_limit: int | None = None
    dev_limit: int | None = None
    baseline_limit: int | None = None
    data_dir: str | None = None
    layout: str = "pt"
    prompts: PromptSource = PromptSource()
    suppress: SuppressPlan | None = None
    transfer: AnalysisPlan | None = None
    correlate: AnalysisPlan | None = None
    compare_adversarial: AnalysisPlan | None = None
    report: ReportPlan | None = None

    @classmethod
    def load(cls, path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
        """Parse a file, apply ``overrides`` (``KEY=VALUE``) and check the result against
        ``schemas/experiment-v1.json``: an unknown key or a value of the wrong type is one error naming the key,
        before anything runs."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except (FileNotFoundError, IsADirectoryError):
            raise ActstoreError(f"experiment file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ActstoreError(f"{path} is not valid TOML: {exc}") from None
        raw = apply_overrides(raw, overrides)
        _validate(raw, path)
        for name in raw["tasks"]:
            tasks.get_task(name)
        models = tuple(raw["models"]) if "models" in raw else (raw["model"],)
        data = raw.get("data", {})
        experiment = cls(
            store=raw["store"],
            models=models,
            seeds=tuple(raw["seeds"]),
            tasks=tuple(raw["tasks"]),
            tune=_section(TuneOptions, raw, "tune", path),
            extract=_section(ExtractOptions, raw, "extract", path),
            train_limit=data.get("train_limit"),
            dev_limit=data.get("dev_limit"),
            baseline_limit=data.get("baseline_limit"),
            data_dir=data.get("data_dir"),
            layout=raw.get("layout", "pt"),
            prompts=PromptSource(raw.get("prompts", {}).get("from", "tune"), raw.get("prompts", {}).get("dir")),
            suppress=_suppress_plan(raw, path),
            report=_report_plan(raw),
            **{name: _analysis_plan(raw, name) for name in ("transfer", "correlate", "compare_adversarial")},
        )
        experiment._check(path)
        return experiment

    @property
    def model(self) -> str:
        """The one model of a single-model experiment (``each_model`` gives one such experiment per model)."""
        if len(self.models) != 1:
            raise ActstoreError(
                f"this experiment runs {len(self.models)} models ({', '.join(self.models)}): "
                "take them one by one with each_model()"
            )
        return self.models[0]

    def each_model(self) -> list[Experiment]:
        """One experiment per model, ``{model}`` in the store and report folder replaced by the model's name."""
        return [
            replace(
                self,
                models=(name,),
                store=_fill(self.store, name),
                report=self.report and replace(self.report, out=_fill(self.report.out, name)),
            )
            for name in self.models
        ]

    def ordered_tasks(self) -> list[str]:
        """Clean tasks first, so an adversarial task finds its source's prompts and baseline."""
        return sorted(self.tasks, key=lambda t: tasks.get_task(t).clean_source is not None)

    def clean_tasks(self) -> list[str]:
        return [t for t in self.tasks if tasks.get_task(t).clean_source is None]

    def adversarial_pairs(self) -> list[tuple[str, str]]:
        """(adversarial task, its clean task) for every adversarial task whose clean task is in the experiment."""
        return [
            (t, tasks.source_task(t))
            for t in self.tasks
            if tasks.get_task(t).clean_source is not None and tasks.source_task(t) in self.tasks
        ]

    def suppression_runs(self) -> list[tuple[str, str, str]]:
        """(task scored, task whose skill neurons are suppressed, mode) of ``[suppress]``, in the order they run."""
        if self.suppress is None:
            return []
        own = [(t, t, mode) for t in self.suppress.tasks or self.clean_tasks() for mode in self.suppress.modes]
        cross = [
            (a, b, mode)
            for adv, clean in self.adversarial_pairs()
            for a, b in ((adv, clean), (clean, adv))
            for mode in self.suppress.cross_modes
        ]
        return own + cross

    def transfer_tasks(self) -> list[str]:
        """The tasks of the transfer matrix (none where fewer than 2: nothing to compare)."""
        if self.transfer is None:
            return []
        names = list(self.transfer.tasks or self.clean_tasks())
        return names if len(names) >= 2 else []

    def correlations(self) -> list[tuple[tuple[str, ...], str]]:
        """(tasks, normalize) of every ``[correlate]`` run (zscore needs 3 tasks, the raw correlation 2)."""
        if self.correlate is None:
            return []
        names = tuple(self.correlate.tasks or self.tasks)
        return [(names, n) for n in self.correlate.normalize if len(names) >= (3 if n == "zscore" else 2)]

    def adversarial_comparisons(self) -> list[tuple[str, str]]:
        """(adversarial task, clean task) of ``[compare_adversarial]``."""
        if self.compare_adversarial is None:
            return []
        pairs = self.adversarial_pairs()
        return [p for p in pairs if self.compare_adversarial.tasks is None or p[0] in self.compare_adversarial.tasks]

    def _check(self, path: Path) -> None:
        """What the schema cannot say: one store per model, and the analyses' tasks among the experiment's."""
        if len(self.models) > 1:
            for key, value in (("store", self.store), ("report.out", self.report and self.report.out)):
                if value is not None and "{model}" not in str(value):
                    raise ActstoreError(
                        f"{path}: {key}: {len(self.models)} models need a store (and report) each: "
                        "put {model} in it, e.g. runs/paper-{model}.zarr"
                    )
        if self.prompts.kind == "robust-neurons":
            if not self.prompts.dir:
                raise ActstoreError(f'{path}: prompts.dir: from = "robust-neurons" needs the release\'s folder')
            if self.layout != RN_LAYOUT:
                raise ActstoreError(
                    f"{path}: layout: the Robust-Neurons prompts were tuned in the '{RN_LAYOUT}' "
                    f"layout, not '{self.layout}': run them in it (layout = \"{RN_LAYOUT}\")"
                )
        adversarial = dict(self.adversarial_pairs())
        sections = {
            "suppress": self.suppress,
            "transfer": self.transfer,
            "correlate": self.correlate,
            "compare_adversarial": self.compare_adversarial,
        }
        for key, plan_ in sections.items():
            for name in (plan_.tasks or ()) if plan_ else ():
                if name not in self.tasks:
                    raise ActstoreError(
                        f"{path}: {key}.tasks: '{name}' is not one of the experiment's tasks ({', '.join(self.tasks)})"
                    )
                if key == "compare_adversarial" and name not in adversarial:
                    raise ActstoreError(
                        f"{path}: {key}.tasks: '{name}' is no adversarial task whose clean task is in the experiment"
                    )
        if self.transfer and self.transfer.tasks and len(self.transfer.tasks) < 2:
            raise ActstoreError(f"{path}: transfer.tasks: the transfer matrix needs at least 2 tasks")
        if self.correlate and self.correlate.tasks:
            least = 3 if "zscore" in self.correlate.normalize else 2
            if len(self.correlate.tasks) < least:
                raise ActstoreError(
                    f"{path}: correlate.tasks: give at least {least} tasks"
                    + (" (zscore standardises across the tasks)" if least == 3 else "")
                )


def apply_overrides(raw: dict, overrides: Sequence[str]) -> dict:
    """``KEY=VALUE`` pairs set into a parsed file (a copy): ``a.b`` is key b of section a; VALUE is a TOML value, or a
    string where it is none (``model=/path/to/dir``); ``model`` and ``models`` replace each other."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not all(part.strip() for part in key.split(".")):
            raise ActstoreError(f"--set: expected KEY=VALUE (e.g. data.dev_limit=8), got '{item}'")
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        *sections, name = [part.strip() for part in key.split(".")]
        target = raw
        for i, section in enumerate(sections):
            target = target.setdefault(section, {})
            if not isinstance(target, dict):
                raise ActstoreError(f"--set {key}: {'.'.join(sections[: i + 1])} is a value, not a section")
        if not sections and name in ("model", "models"):
            raw.pop("models" if name == "model" else "model", None)
        target[name] = value
    return raw


def _fill(template, model: str):
    """``{model}`` in a store location or folder replaced by the model's last path part."""
    slug = _SLUG.sub("-", Path(model.rstrip("/")).name) or "model"
    if isinstance(template, StoreLocation):
        return replace(template, url=template.url.replace("{model}", slug))
    return template.replace("{model}", slug)


@cache
def _schema() -> dict:
    return json.loads(resources.files("actstore.schemas").joinpath(f"experiment-v{SCHEMA_VERSION}.json").read_text())


def _validate(raw: dict, path: Path) -> None:
    """One line for the most relevant schema violation, naming the key (an unknown key: the known ones too)."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(_schema()).iter_errors(raw))
    if error is None:
        if ("model" in raw) == ("models" in raw):
            raise ActstoreError(
                f"{path}: (top): give 'model' (one) or 'models' (a list), "
                + ("not both" if "model" in raw else "'model' is a required property")
            )
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


def _suppress_plan(raw: dict, path: Path) -> SuppressPlan | None:
    if "suppress" not in raw:
        return None
    section = dict(raw["suppress"])
    fields = {key: section.pop(key) for key in ("tasks", "modes", "cross_modes") if key in section}
    if "percents" in section:
        section["percents"] = tuple(float(p) for p in section["percents"])
    options = _section(SuppressOptions, {"suppress": section}, "suppress", path)
    return SuppressPlan(options=options, **{k: tuple(v) for k, v in fields.items()})


def _analysis_plan(raw: dict, name: str) -> AnalysisPlan | None:
    if name not in raw:
        return None
    section = raw[name]
    settings: dict[str, Any] = {
        k: tuple(float(p) for p in v) if k == "percents" else tuple(v) if isinstance(v, list) else v
        for k, v in section.items()
    }
    return AnalysisPlan(**settings)


def _report_plan(raw: dict) -> ReportPlan | None:
    return ReportPlan(**raw["report"]) if "report" in raw else None


@dataclass(frozen=True)
class TaskReport:
    """What one task of an experiment ended with."""

    task: str
    prompts_from: str
    dev_accuracy: dict[int, float]
    top: list[dict]
    model: str = ""


@dataclass(frozen=True)
class AnalysisReport:
    """One analysis an experiment ran (or found stored already): where its result is."""

    model: str
    kind: str
    name: str
    stored: str
    ran: bool = True
    files: list[str] = field(default_factory=list)


def run(
    experiment: Experiment,
    progress: ProgressFactory = _silent,
    say: Callable[[str], None] = lambda line: None,
    model: PromptedModel | None = None,
    analyses: list[AnalysisReport] | None = None,
) -> list[TaskReport]:
    """Run (or finish) every step of every task for each model in turn; returns per task its accuracy per seed and
    top skill neurons, and appends each analysis to ``analyses``. All data is loaded and checked against a model
    before its store is opened (so a bad run creates none). ``model``: an already loaded one (one-model files)."""
    shard = Shard.from_env()
    runs = experiment.each_model()
    if model is not None and len(runs) > 1:
        raise ActstoreError(f"a loaded model was given, but the experiment runs {len(runs)} models")
    reports: list[TaskReport] = []
    for single in runs:
        if len(runs) > 1:
            say(f"{single.model} → {single.store}")
        reports += _run_model(single, progress, say, model, shard, analyses if analyses is not None else [])
    return reports


def _run_model(
    experiment: Experiment,
    progress: ProgressFactory,
    say: Callable[[str], None],
    model: PromptedModel | None,
    shard: Shard,
    analyses: list[AnalysisReport],
) -> list[TaskReport]:
    if experiment.prompts.kind == "robust-neurons":  # the tree and its tasks, before a model is loaded
        assert experiment.prompts.dir is not None  # Experiment._check refused robust-neurons without one
        for name in experiment.clean_tasks():
            robust_neurons_seeds(Path(experiment.prompts.dir), name)
    model = model or load_model(experiment.model, device=shard.device(None), layout=experiment.layout)
    loaded = {name: _load(experiment, tasks.get_task(name)) for name in experiment.ordered_tasks()}
    released = _released_prompts(experiment, model)
    check(experiment, model, loaded, released)
    store = Store(experiment.store, mode="a")
    reports = []
    with store.writing(shared=shard.sharded):
        for name, (train, dev) in loaded.items():
            report = _run_task(
                experiment, store, model, tasks.get_task(name), train, dev, progress, say, shard, released.get(name)
            )
            reports += [replace(report, model=experiment.model)] if report else []
        if not shard.rank:  # the analyses run on rank 0 alone, once every rank's extraction is in
            _analyses(
                experiment, store, model, {name: dev for name, (_, dev) in loaded.items()}, progress, say, analyses
            )
    if experiment.report and not shard.rank:
        from .report import render

        written = render(Store(experiment.store), experiment.report.out, neuron_pages=experiment.report.neurons)
        index = Path(experiment.report.out) / "index.md"
        say(
            f"report: {len(written.figures)} figure(s), {sum(map(len, written.neurons.values()))} neuron page(s); "
            f"{index}"
        )
        analyses.append(
            AnalysisReport(
                experiment.model,
                "report",
                str(experiment.report.out),
                str(index),
                files=[str(p) for p in written.files()],
            )
        )
    return reports


#: a task's loaded splits: train (None for an adversarial task, which is not tuned) and dev
Loaded = tuple[tasks.Split | None, tasks.Split]


def _load(experiment: Experiment, task: tasks.TaskSpec) -> Loaded:
    def split(name: str) -> tasks.Split:
        loaded = tasks.load_split(task, name, data_dir=experiment.data_dir)
        limit = experiment.train_limit if name == "train" else experiment.dev_limit
        return loaded.sample(limit) if limit else loaded

    return (None if task.clean_source else split("train")), split("validation")


def _released_prompts(experiment: Experiment, model: PromptedModel) -> dict[str, PromptSet]:
    """Per clean task, the released prompts of the experiment's seeds (``[prompts] from = "robust-neurons"``)."""
    if experiment.prompts.kind != "robust-neurons":
        return {}
    assert experiment.prompts.dir is not None  # Experiment._check refused robust-neurons without one
    found = {}
    for name in experiment.clean_tasks():
        every = PromptSet.from_robust_neurons(experiment.prompts.dir, name, model.spec.architecture, model.spec.hidden)
        missing = [s for s in experiment.seeds if s not in every.seeds]
        if missing:
            raise ActstoreError(
                f"{experiment.prompts.dir} holds the seeds {', '.join(every.names)} "
                f"({', '.join(map(str, every.seeds))}) of '{name}', not {missing}: set seeds to some "
                "of them (seed_su is seed 0)"
            )
        rows = [every.seeds.index(s) for s in experiment.seeds]
        found[name] = PromptSet(
            every.vectors[rows],
            experiment.seeds,
            every.source,
            seed_names=tuple(every.names[i] for i in rows),
            files=tuple(every.files[i] for i in rows) if every.files else (),
        )
    return found


def _to_extract(experiment: Experiment, train: tasks.Split | None, dev: tasks.Split) -> list[tasks.Split]:
    """A clean task's train sample for the baseline and its dev split; an adversarial task's dev split."""
    if train is None:
        return [dev]
    return [train.sample(experiment.baseline_limit) if experiment.baseline_limit else train, dev]


def check(
    experiment: Experiment,
    model: PromptedModel,
    loaded: Mapping[str, Loaded],
    released: Mapping[str, PromptSet] | None = None,
) -> None:
    """What every step will need, checked up front: tuning's seeds, splits and prompt fit (or the released prompts
    against those the store holds), every extraction's plan, an adversarial task's clean source (in the experiment,
    or its prompts in the store already), and the analyses' inference settings."""
    released = released or {}
    existing = existing_store(experiment.store)
    for name, (train, dev) in loaded.items():
        task = tasks.get_task(name)
        source = tasks.source_task(task)
        held = PromptSet.stored(existing, source) if existing is not None and source not in loaded else None
        if name in released:
            old = existing.prompt_spec(name) if existing is not None else None
            if old is not None and old.checksum != released[name].checksum:
                raise ActstoreError(
                    f"{experiment.store} already holds other prompts for '{name}' ({old.source}); "
                    f"use another store for {released[name].source}"
                )
        elif train is not None:
            check_tune(model, task, train, dev, experiment.seeds, experiment.tune)
        elif source not in loaded and held is None:
            raise ActstoreError(f"adversarial task '{name}' needs the prompts of '{source}': add it to the experiment")
        prompts = (
            released.get(source)
            or held
            or PromptSet.random(experiment.seeds, experiment.tune.n_tokens, model.spec.hidden)
        )
        for split in _to_extract(experiment, train, dev):
            plan(model, task, split, prompts, experiment.extract)


def _run_task(
    experiment: Experiment,
    store: Store,
    model: PromptedModel,
    task: tasks.TaskSpec,
    train: tasks.Split | None,
    dev: tasks.Split,
    progress: ProgressFactory,
    say: Callable[[str], None],
    shard: Shard,
    released: PromptSet | None = None,
) -> TaskReport | None:
    """Tune (or import), extract and rank one task; under a launcher every rank tunes and extracts its share, and
    rank 0 ranks once every rank's share is in (the others return None)."""
    source = tasks.source_task(task)
    if released is not None:
        if not shard.rank and store.prompt_spec(task.name) is None:
            store.put_prompts(task.name, released.vectors, released.spec(model.spec))
            say(f"{task.name}: prompts of seeds {', '.join(released.names)} imported from {released.source}")
        wait_until(lambda: store.prompt_spec(source) is not None, f"the prompts of '{source}'", shard)
    elif train is not None:
        mine = sum(shard.owns(i) for i in range(len(experiment.seeds)))
        seeds, steps = list(experiment.seeds), experiment.tune.max_steps

        last: dict[int, float] = {}  # each seed's latest dev accuracy, kept on a bar's status between evaluations

        def where(seed: int, step: int) -> str:
            return f"seed {seed} ({seeds.index(seed) + 1} of {len(seeds)}) step {step}/{steps}"

        def stepped(seed: int, step: int, loss: float) -> None:
            advance(1, f"{where(seed, step)} loss {loss:.3f}" + (f" dev acc {last[seed]:.3f}" if seed in last else ""))

        def evaluated(seed: int, step: int, accuracy: float) -> None:
            last[seed] = accuracy
            advance(0, f"{where(seed, step)} dev accuracy {accuracy:.4f}", True)

        with progress(f"tune {task.name}", mine * steps) as advance:
            tune(
                store,
                model,
                task,
                train,
                dev,
                experiment.seeds,
                experiment.tune,
                on_step=stepped,
                on_eval=evaluated,
                shard=shard,
            )
        wait_until(lambda: store.prompt_spec(source) is not None, f"the prompts of '{source}'", shard)
        say(f"{task.name}: prompts tuned for seeds {list(experiment.seeds)}")
    splits = _to_extract(experiment, train, dev)
    prompts = PromptSet.stored(store, source)
    assert prompts is not None  # tuned or imported above, or the clean source's: check() refused a task without
    for split in splits:
        planned = plan(model, task, split, prompts, experiment.extract)
        with progress(f"extract {task.name}/{split.name}", owned_examples(planned, shard)) as advance:
            extract(
                store,
                model,
                task,
                split,
                prompts,
                experiment.extract,
                progress=lambda n, nbytes: advance(n),
                shard=shard,
            )
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
    return TaskReport(
        task.name,
        source,
        dict(zip(prompts.seeds, np.round(accuracy, 6).tolist())),
        top_neurons(store.ranking_reader(task.name).dataset, 10),
    )


def _analyses(
    experiment: Experiment,
    store: Store,
    model: PromptedModel,
    dev: Mapping[str, tasks.Split],
    progress: ProgressFactory,
    say: Callable[[str], None],
    analyses: list[AnalysisReport],
) -> None:
    """The analyses of the file's sections, in order, on each task's dev split as extracted (the same examples the
    rankings counted), with [extract]'s batch size and text length."""
    batch, length = experiment.extract.batch_size, experiment.extract.max_length
    where = f"{experiment.store}/results"

    def done(kind: str, name: str, ran: bool = True) -> None:
        analyses.append(AnalysisReport(experiment.model, kind, name, f"{where}/{kind}/{name}", ran))

    for name, neurons_from, mode in experiment.suppression_runs():
        assert experiment.suppress is not None  # suppression_runs is empty without [suppress]
        options = replace(experiment.suppress.options, mode=mode)
        task, split = tasks.get_task(name), dev[name]
        stored_as = suppression_name(name, neurons_from, mode, options.scope)
        prompts = PromptSet.stored(store, tasks.source_task(task))
        assert prompts is not None  # _run_model stored the prompts of every task
        if _suppressed(store, stored_as, task, split, model, prompts, options, neurons_from, length):
            say(f"suppression {stored_as}: stored already")
            done("suppression", stored_as, ran=False)
            continue
        runs = len(options.percents) * (1 + options.random_draws) * len(prompts.seeds)
        with progress(f"suppress {stored_as}", runs * len(split)) as advance:
            suppress(
                store,
                model,
                task,
                split,
                options,
                neurons_from=neurons_from,
                batch_size=batch,
                max_length=length,
                tick=advance,
            )
        say(f"suppression {stored_as}: stored in {where}/suppression/{stored_as}")
        done("suppression", stored_as)
    if names := experiment.transfer_tasks():
        pairs = analysis.transfer_pairs(store, names, fingerprints={n: dev[n].fingerprint for n in names})
        check_transfer_runs(store, model, dev, pairs, batch_size=batch, max_length=length)
        seeds = len(experiment.seeds)
        with progress("transfer", sum(len(dev[d]) for d, _ in pairs) * seeds) as advance:
            for data, prompts_from in pairs:
                evaluate(
                    store,
                    model,
                    tasks.get_task(data),
                    dev[data],
                    prompts_from=prompts_from,
                    batch_size=batch,
                    max_length=length,
                    tick=advance,
                )
        analysis.transfer(store, names)
        say(
            f"transfer of {', '.join(names)}: {len(pairs)} pair(s) evaluated; stored in "
            f"{where}/transfer/{','.join(names)}"
        )
        done("transfer", ",".join(names), ran=bool(pairs))
    for correlated, normalize in experiment.correlations():
        analysis.correlate(store, list(correlated), normalize)
        stored_as = ",".join(correlated) + ("" if normalize == "none" else f".{normalize}")
        say(f"task specificity ({normalize}) of {len(correlated)} tasks: stored in {where}/correlation/{stored_as}")
        done("correlation", stored_as)
    for adversarial, clean in experiment.adversarial_comparisons():
        plan_ = experiment.compare_adversarial
        assert plan_ is not None  # adversarial_comparisons is empty without [compare_adversarial]
        result = analysis.compare_adversarial(
            store, adversarial, clean=clean, percents=plan_.percents, scope=plan_.scope
        )
        stored_as = f"{adversarial}@{clean}" + ("" if plan_.scope == "layer" else f".{plan_.scope}")
        say(
            f"adversarial predictivity {stored_as}: overlap of the top {plan_.percents[0]:g} % "
            f"{float(result['overlap'].values[0]):.3f} (chance {float(result['chance'].values[0]):.3f})"
        )
        done("adversarial", stored_as)


def _suppressed(
    store: Store,
    name: str,
    task: tasks.TaskSpec,
    split: tasks.Split,
    model: PromptedModel,
    prompts: PromptSet,
    options: SuppressOptions,
    neurons_from: str,
    max_length: int,
) -> bool:
    """Whether results/suppression/<name> holds this very run already (same data, prompts, model and settings)."""
    stored = store.find_result("suppression", name)
    if stored is None:
        return False
    wanted = {
        **run_spec(task, split, tasks.source_task(task), model, prompts, max_length),
        "neurons_from": neurons_from,
        "mode": options.mode,
        "scope": options.scope,
        "percents": [float(p) for p in options.percents],
        "random_draws": options.random_draws,
        "random_seed": options.random_seed,
        "noise_scale": options.noise_scale,
    }
    held = stored.attrs["spec"]
    return json.loads(json.dumps(wanted)) == json.loads(json.dumps({k: held.get(k) for k in wanted}))
