"""What an experiment would run, before anything runs (``actstore run --dry-run``): every step, the bytes each
extraction would store and the GPU-hours each step would take.

Nothing is loaded, downloaded or written. Model sizes come from ``KNOWN_MODELS`` (the papers' models), else from a
local directory's ``config.json`` or one the hub cache already holds; example counts from ``SPLIT_SIZES`` (the hub's
splits, what a run online loads), capped by the file's limits. The bytes are exact for those counts: they are summed
over the very arrays an extraction creates (``store.layout.extraction_layout``), which are stored uncompressed (a
CRC32C per chunk), the examples' texts left out. The GPU-hours are an estimate: forward passes over an assumed
throughput, ``ASSUMED_EXAMPLES_PER_S``, scaled to other models and lengths by their FLOPs per forward pass.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import tasks
from .baselines import stack_specs
from .errors import ActstoreError
from .experiment import Experiment
from .extraction import kept
from .prompts import RN_TOKENS, robust_neurons_seeds
from .specs import ExtractionSpec, ModelSpec
from .store.layout import extraction_layout

#: ASSUMED, not measured (no GPU has been lent to this project; README "Throughput" has only CPU numbers): forward
#: passes per second on one GPU for roberta-base (12 layers, hidden 768, FFN 3072) with 100 prompt tokens and 128
#: text tokens, float32 weights (as actstore loads them), batches of 32. Derived, not timed: such a pass is about
#: 41 GFLOP (``flops_per_pass``), and an A100-class GPU sustains about 8 TFLOP/s in float32 (40 % of its 19.5 peak),
#: so 8e12 / 41e9 ≈ 200. A faster card, TF32 or half precision would be quicker; a disk slower than the extraction's
#: output rate (printed with the totals), slower.
ASSUMED_EXAMPLES_PER_S = 200.0
#: the pass that rate is assumed for: roberta-base, prompt tokens, text tokens
REFERENCE = ("roberta-base", 100, 128)
#: a tuning step costs about this many forward passes per example (forward + backward to the prompt; the frozen
#: weights need no gradients of their own, so 2–3 ×: the upper end, assumed)
TRAIN_PASSES = 3.0
#: what the checksum codec adds to every chunk (store.integrity.CHECKSUM: a CRC32C)
CRC_BYTES = 4


@dataclass(frozen=True)
class ModelSize:
    """What the estimate needs of a model: its FFN layers and widths (``source``: where the numbers come from)."""

    architecture: str
    n_layers: int
    n_neurons: int
    hidden: int
    n_decoder_layers: int = 0
    gated: bool = False  # T5 v1.1: two input projections per FFN
    max_positions: int = 512
    source: str = ""


#: the papers' models and their neighbours, from their config.json on the hub (``transformers``' config classes do
#: not help: T5Config() is t5-small's sizes, RobertaConfig() has 512 positions where roberta-base has 514)
KNOWN_MODELS = {
    "roberta-base": ModelSize("roberta", 12, 3072, 768, source="roberta-base config.json"),
    "roberta-large": ModelSize("roberta", 24, 4096, 1024, source="roberta-large config.json"),
    "bert-base-uncased": ModelSize("bert", 12, 3072, 768, source="bert-base-uncased config.json"),
    "t5-base": ModelSize("t5", 12, 3072, 768, 12, source="t5-base config.json"),
    "t5-large": ModelSize("t5", 24, 4096, 1024, 24, source="t5-large config.json"),
    "google/t5-v1_1-base": ModelSize("t5", 12, 2048, 768, 12, gated=True, source="google/t5-v1_1-base config.json"),
}

#: examples per split on the hub (dataset cards; GLUE, AdvGLUE dev, ETHICS, ...): what a run online loads. A task
#: that takes its dev split from train (``dev_from_train``) lists train only. Local copies can differ: offline, QNLI
#: is GLUE's dev file re-split (4,917 / 546), and tweets3 exists only locally.
SPLIT_SIZES = {
    "sst2": {"train": 67_349, "validation": 872},
    "imdb": {"train": 25_000},
    "rotten_tomatoes": {"train": 8_530},
    "movie_rationales": {"train": 1_600, "validation": 200},
    "qqp": {"train": 363_846, "validation": 40_430},
    "mrpc": {"train": 3_668, "validation": 408},
    "qnli": {"train": 104_743, "validation": 5_463},
    "ethics_deontology": {"train": 18_164, "validation": 3_596},
    "ethics_justice": {"train": 21_791, "validation": 2_704},
    "adv_sst2": {"validation": 148},
    "adv_qqp": {"validation": 78},
    "adv_qnli": {"validation": 148},
    "tweets3": {"train": 38_158},
}


@dataclass
class Step:
    """One step of the plan: ``examples`` per seed, ``passes`` forward passes in all (tuning: their equivalent),
    ``bytes`` stored; None where a count is unknown."""

    kind: str
    what: str
    examples: int | None = None
    seeds: int = 0
    passes: float | None = 0
    bytes: int | None = 0
    gpu_hours: float | None = 0.0
    note: str = ""


@dataclass
class ModelPlan:
    model: str
    store: str
    size: dict
    examples_per_s: float
    steps: list[Step] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(s.bytes or 0 for s in self.steps)

    @property
    def gpu_hours(self) -> float:
        return sum(s.gpu_hours or 0.0 for s in self.steps)

    @property
    def write_rate(self) -> float:
        """Bytes per second the fastest-writing extraction writes at the assumed throughput: the disk must keep up."""
        return max(
            [
                s.bytes * self.examples_per_s / s.passes
                for s in self.steps
                if s.kind == "extract" and s.bytes and s.passes
            ]
            or [0.0]
        )


@dataclass
class Estimate:
    file: str
    models: list[ModelPlan]
    notes: list[str]

    @property
    def bytes(self) -> int:
        return sum(m.bytes for m in self.models)

    @property
    def gpu_hours(self) -> float:
        return sum(m.gpu_hours for m in self.models)

    def as_json(self) -> dict:
        return {
            "file": self.file,
            "dry_run": True,
            "assumptions": {
                "examples_per_s": ASSUMED_EXAMPLES_PER_S,
                "reference_pass": {"model": REFERENCE[0], "prompt_tokens": REFERENCE[1], "text_tokens": REFERENCE[2]},
                "train_passes_per_example": TRAIN_PASSES,
                "notes": self.notes,
            },
            "models": [
                {
                    "model": m.model,
                    "store": m.store,
                    "size": m.size,
                    "examples_per_s": m.examples_per_s,
                    "steps": [asdict(s) for s in m.steps],
                    "bytes": m.bytes,
                    "gpu_hours": m.gpu_hours,
                    "write_bytes_per_s": m.write_rate,
                }
                for m in self.models
            ],
            "total": {"bytes": self.bytes, "gpu_hours": self.gpu_hours},
        }


def model_size(name: str) -> ModelSize:
    """The sizes of ``name`` without loading it: the table, a local directory's config.json, or the hub cache's."""
    if name in KNOWN_MODELS:
        return KNOWN_MODELS[name]
    from .models import resolve

    path = Path(resolve(name)) / "config.json"
    if not path.is_file():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")  # the local cache only: no request
        if not isinstance(cached, str):
            raise ActstoreError(
                f"the dry run does not know the sizes of model '{name}': not one of "
                f"{', '.join(KNOWN_MODELS)}, no local directory with a config.json, and none in the "
                "hub cache"
            )
        path = Path(cached)
    config = json.loads(path.read_text())
    if config.get("model_type") == "t5":
        return ModelSize(
            "t5",
            config["num_layers"],
            config["d_ff"],
            config["d_model"],
            config.get("num_decoder_layers") or config["num_layers"],
            gated=config.get("feed_forward_proj", "relu").startswith("gated"),
            source=str(path),
        )
    positions = config.get("max_position_embeddings", 512)
    if config.get("model_type") == "roberta":
        positions -= config.get("pad_token_id", 1) + 1
    return ModelSize(
        config["model_type"],
        config["num_hidden_layers"],
        config["intermediate_size"],
        config["hidden_size"],
        max_positions=positions,
        source=str(path),
    )


def flops_per_pass(size: ModelSize, prompt_tokens: int, text_tokens: int) -> float:
    """FLOPs of one forward pass (2 per multiply-add): per encoder layer the four attention projections, the FFN and
    the attention scores over every token; T5's decoder at its first step (one token, attending to the encoder).
    The embedding lookup and the label-word head are left out."""
    n, h, f = prompt_tokens + text_tokens, size.hidden, size.n_neurons
    ffn = (3 if size.gated else 2) * h * f
    total = size.n_layers * 2 * (n * (4 * h * h + ffn) + 2 * n * n * h)
    total += size.n_decoder_layers * 2 * (8 * h * h + ffn + 2 * n * h)
    return float(total)


def examples_per_s(size: ModelSize, prompt_tokens: int, text_tokens: int) -> float:
    """``ASSUMED_EXAMPLES_PER_S`` scaled from the reference pass to this model and these lengths by FLOPs."""
    name, p, t = REFERENCE
    reference = flops_per_pass(KNOWN_MODELS[name], p, t)
    return ASSUMED_EXAMPLES_PER_S * reference / flops_per_pass(size, prompt_tokens, text_tokens)


def split_sizes(task: tasks.TaskSpec) -> dict[str, int]:
    """train and validation examples on the hub (``SPLIT_SIZES``), validation taken from train by the registry's
    rule where the task has no dev split; empty where the task is not in the table."""
    sizes = dict(SPLIT_SIZES.get(task.name, {}))
    if task.dev_from_train and "train" in sizes:
        rule = tasks._registry()["dev_from_train"]
        n = sizes["train"]
        sizes["validation"] = min(int(n * rule["fraction"]), rule["max_examples"])
        sizes["train"] = n - sizes["validation"]
    return sizes


def extraction_bytes(spec: ExtractionSpec) -> int:
    """What an extraction stores: every chunk of every array of its layout (T5: both stacks), whole (zarr stores a
    chunk at the edge full size) with its CRC32C; the texts left out."""
    total = 0
    for stack in stack_specs(spec):
        for a in extraction_layout(stack):
            if a.dtype != "str":
                chunks = np.prod([-(-n // c) for n, c in zip(a.shape, a.chunks)], dtype=np.int64)
                total += int(chunks) * (int(np.prod(a.chunks, dtype=np.int64)) * np.dtype(a.dtype).itemsize + CRC_BYTES)
    return total


def estimate(experiment: Experiment, file: str = "") -> Estimate:
    """The plan of every model of ``experiment``; reads no weights and no data, creates no store."""
    released = experiment.prompts.kind == "robust-neurons"
    n_tokens = RN_TOKENS if released else experiment.tune.n_tokens
    notes = [
        f"throughput: {ASSUMED_EXAMPLES_PER_S:g} forward passes/s on one GPU for {REFERENCE[0]} with {REFERENCE[1]} "
        f"prompt + {REFERENCE[2]} text tokens (ASSUMED_EXAMPLES_PER_S in actstore/estimate.py: derived from a FLOP "
        "count at ~8 TFLOP/s float32, an A100-class GPU, not measured); other models and lengths scaled by FLOPs",
        "every text counted at max_length tokens (an upper bound: short texts such as SST-2's are padded less); "
        f"a tuning step ≈ {TRAIN_PASSES:g} forward passes per example, every step run (early stopping ends sooner)",
        "examples: the hub's split sizes (SPLIT_SIZES), capped by [data] limits; local copies can differ",
        "bytes: every chunk of the arrays an extraction creates (uncompressed, a CRC32C each; texts left out); "
        "rank, correlate, compare-adversarial and report run on the CPU",
    ]
    plans = [_model_plan(single, n_tokens, released) for single in experiment.each_model()]
    return Estimate(file, plans, notes)


def _model_plan(experiment: Experiment, n_tokens: int, released: bool) -> ModelPlan:
    size = model_size(experiment.model)
    spec = ModelSpec(
        name=experiment.model,
        revision="",
        architecture=size.architecture,
        scoring="",
        n_layers=size.n_layers,
        n_neurons=size.n_neurons,
        hidden=size.hidden,
        max_positions=size.max_positions,
        n_decoder_layers=size.n_decoder_layers,
        layout=experiment.layout,
    )
    options, seeds = experiment.extract, len(experiment.seeds)
    rate = examples_per_s(size, n_tokens, options.max_length)
    plan = ModelPlan(experiment.model, str(experiment.store), asdict(size), rate)

    def hours(passes: float | None, per_s: float = rate) -> float | None:
        return None if passes is None else passes / per_s / 3600

    def capped(n: int | None, *limits: int | None) -> int | None:
        return None if n is None else min([n] + [x for x in limits if x])

    dev_sizes = {}
    for name in experiment.ordered_tasks():
        task = tasks.get_task(name)
        sizes = split_sizes(task)
        n_dev = dev_sizes[name] = capped(sizes.get("validation"), experiment.dev_limit)
        if task.clean_source is None:
            n_train = capped(sizes.get("train"), experiment.train_limit)
            if released:
                plan.steps.append(Step("prompts", name, note=_release_note(experiment, name)))
            else:
                tune = experiment.tune
                per_seed = (
                    None
                    if n_dev is None
                    else (tune.max_steps * tune.batch_size * TRAIN_PASSES + tune.max_steps // tune.eval_every * n_dev)
                )
                passes = None if per_seed is None else per_seed * seeds
                plan.steps.append(
                    Step(
                        "tune",
                        name,
                        tune.max_steps * tune.batch_size,
                        seeds,
                        passes,
                        0,
                        hours(passes, examples_per_s(size, tune.n_tokens, tune.max_length)),
                        f"≤ {tune.max_steps} steps of {tune.batch_size}, dev every {tune.eval_every}",
                    )
                )
            baseline = capped(n_train, experiment.baseline_limit)
            plan.steps.append(_extraction(spec, task, "train", baseline, experiment, n_tokens, hours))
        plan.steps.append(_extraction(spec, task, "validation", n_dev, experiment, n_tokens, hours))
        read = "the bits" if options.keep != "acts" else "the values"
        plan.steps.append(Step("rank", name, note=f"CPU, {read} against {tasks.source_task(task)}'s baseline"))
    for name, neurons_from, mode in experiment.suppression_runs():
        assert experiment.suppress is not None  # ``suppression_runs`` gives none without it
        o = experiment.suppress.options
        n = dev_sizes[name]
        runs = (0.0 in o.percents) + sum(p > 0 for p in o.percents) * (1 + o.random_draws)
        passes = None if n is None else n * seeds * runs
        what = f"{name} ({mode})" if name == neurons_from else f"{name} ← {neurons_from} ({mode})"
        plan.steps.append(
            Step(
                "suppress",
                what,
                n,
                seeds,
                passes,
                0,
                hours(passes),
                f"{len(o.percents)} percentages × (skill + {o.random_draws} random), {o.scope}",
            )
        )
    if names := experiment.transfer_tasks():
        counts = [dev_sizes[d] for d in names]
        passes = None if None in counts else sum(c or 0 for c in counts) * len(names) * seeds
        plan.steps.append(
            Step(
                "transfer",
                f"{len(names)} tasks",
                sum(c or 0 for c in counts),
                seeds,
                passes,
                0,
                hours(passes),
                f"{len(names)} × {len(names)} pairs",
            )
        )
    for correlated, normalize in experiment.correlations():
        plan.steps.append(Step("correlate", f"{len(correlated)} tasks ({normalize})", note="CPU"))
    for adversarial, clean in experiment.adversarial_comparisons():
        plan.steps.append(Step("compare-adversarial", f"{adversarial} vs {clean}", note="CPU"))
    if experiment.report:
        plan.steps.append(
            Step("report", str(experiment.report.out), note=f"CPU, {experiment.report.neurons} neuron page(s) per task")
        )
    return plan


def _extraction(
    spec: ModelSpec, task: tasks.TaskSpec, split: str, n: int | None, experiment: Experiment, n_tokens: int, hours
) -> Step:
    options, seeds = experiment.extract, experiment.seeds
    keeps = kept(split, options)
    what = f"{task.name}/{split}"
    if n is None:
        return Step("extract", what, None, len(seeds), None, None, None, "split size unknown (not in SPLIT_SIZES)")
    planned = ExtractionSpec(
        task=task.name,
        split=split,
        model=spec,
        prompt_checksum="",
        seeds=seeds,
        n_tokens=n_tokens,
        n_examples=n,
        data_fingerprint="",
        label_names=tuple(task.label_names),
        label_words=tuple(task.label_words),
        dtype=options.dtype,
        max_length=options.max_length,
        block=options.block,
        **keeps,
        baseline_task=tasks.source_task(task) if keeps["store_bits"] else "",
        n_text_fields=len(task.text_fields),
        manifests=True,
    )
    if split == "train":
        note = "baseline" + (" + values" if keeps["store_acts"] else " (its segment sums; values not kept)")
    else:
        note = {"acts": "values", "bits": "above-baseline bits", "both": "values + bits"}[options.keep]
    passes = n * len(seeds)
    return Step(
        "extract", what, n, len(seeds), passes, extraction_bytes(planned), hours(passes), f"{note}, {options.dtype}"
    )


def _release_note(experiment: Experiment, task: str) -> str:
    """Where a clean task's released prompts would come from, or why the run would stop there."""
    assert experiment.prompts.dir is not None  # Experiment._check refused robust-neurons without one
    try:
        found = robust_neurons_seeds(Path(experiment.prompts.dir), task)
    except ActstoreError as exc:
        return f"would stop here: {exc}"
    missing = [s for s in experiment.seeds if s not in [seed for seed, _ in found]]
    where = f"import seeds {','.join(map(str, experiment.seeds))} from {experiment.prompts.dir} (robust-neurons)"
    return where + (f"; would stop: seeds {missing} are not in the release" if missing else "")


def human_bytes(n: int | None) -> str:
    """Decimal units, as METHOD.md writes sizes (7.4 MB)."""
    if n is None:
        return "?"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"
