"""The documented `tune`, `eval`, `run` and `prompts` commands on a tiny model and real SST-2 / AdvSST2 rows."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from actstore import open_store
from actstore.experiment import Experiment, run
from actstore.prompts import PromptSet
from helpers import digest, experiment_toml, invoke, one_error_line

TUNE = [
    "--prompt-length",
    "3",
    "--max-steps",
    "4",
    "--eval-every",
    "2",
    "--batch-size",
    "4",
    "--max-length",
    "32",
    "--limit",
    "16",
]


@pytest.fixture(scope="module")
def tuned(tiny_model_dir, data_dir, tmp_path_factory):
    """`actstore tune` of sst2 with two seeds on a tiny RoBERTa."""
    path = tmp_path_factory.mktemp("tune") / "s.zarr"
    result = invoke(
        "tune",
        "--model",
        tiny_model_dir("roberta"),
        "--task",
        "sst2",
        "--seeds",
        "0,1",
        "--store",
        path,
        "--data-dir",
        data_dir,
        *TUNE,
    )
    assert result.exit_code == 0, result.output
    assert "prompt tuning of sst2 (16 dev examples)" in result.output and "over 2 seeds" in result.output
    return path


def test_tune_stores_prompts_and_curves(tuned):
    store = open_store(tuned)
    prompts, curves = PromptSet.stored(store, "sst2"), store.result("tuning", "sst2")
    assert prompts.seeds == (0, 1) and prompts.vectors.shape[:2] == (2, 3)
    np.testing.assert_array_equal(prompts.vectors, curves["prompt"].values)
    assert curves["dev_accuracy"].dims == ("seed", "evaluation") and (curves["wall_s"] > 0).all()
    assert store.prompt_spec("sst2").source.startswith("tuned")
    listed = invoke("info", tuned)
    assert "results/tuning: sst2" in listed.output and "prompts/sst2: 2 seeds × 3 tokens, tuned" in listed.output


def test_eval_with_the_clean_prompts_on_the_adversarial_task(tuned, tiny_model_dir, data_dir):
    result = invoke(
        "eval",
        "--model",
        tiny_model_dir("roberta"),
        "--task",
        "adv_sst2",
        "--store",
        tuned,
        "--data-dir",
        data_dir,
        "--limit",
        "12",
        "--max-length",
        "32",
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["prompts_from"] == "sst2" and set(payload["accuracy"]) == {"0", "1"}
    stored = open_store(tuned).result("evaluation", "adv_sst2@sst2")
    np.testing.assert_array_equal(stored["accuracy"].values, [payload["accuracy"]["0"], payload["accuracy"]["1"]])
    assert abs(payload["mean"] - np.mean(stored["accuracy"].values)) < 1e-12


def test_prompts_export_and_import_round_trip(tuned, tiny_model_dir, tmp_path):
    for fmt in ("pt", "peft"):
        result = invoke(
            "prompts", "export", "--task", "sst2", "--store", tuned, "--out", tmp_path / fmt, "--format", fmt
        )
        assert result.exit_code == 0, result.output
    assert torch.load(tmp_path / "pt" / "seed1.pt").shape == (3, 32)
    config = json.loads((tmp_path / "peft" / "seed0" / "adapter_config.json").read_text())
    assert config["peft_type"] == "PROMPT_TUNING" and config["num_virtual_tokens"] == 3
    original = PromptSet.stored(open_store(tuned), "sst2").vectors
    for fmt, files in (("pt", ["seed0.pt", "seed1.pt"]), ("peft", ["seed0", "seed1"])):
        copy = tmp_path / f"{fmt}.zarr"
        result = invoke(
            "prompts",
            "import",
            *[tmp_path / fmt / f for f in files],
            "--task",
            "sst2",
            "--store",
            copy,
            "--model",
            tiny_model_dir("roberta"),
            "--seeds",
            "0,1",
        )
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(PromptSet.stored(open_store(copy), "sst2").vectors, original)


def test_bad_tuning_input_is_one_line_and_harmless(tuned, tiny_model_dir, data_dir, tmp_path):
    before = digest(tuned)
    base = ["tune", "--model", tiny_model_dir("roberta"), "--store", tuned, "--data-dir", data_dir]
    one_error_line(invoke(*base, "--task", "sst2", "--seeds", "0,0", *TUNE), "duplicate seeds")
    one_error_line(
        invoke(*base, "--task", "sst2", "--seeds", "0", *TUNE[2:], "--prompt-length", "0"),
        "prompt length must be positive",
    )
    # peft: the prompt takes positions
    one_error_line(
        invoke(*base, "--task", "sst2", "--seeds", "0", *TUNE[2:], "--prompt-length", "400", "--layout", "peft"),
        "exceed the",
    )
    one_error_line(
        invoke(
            "tune",
            "--model",
            tiny_model_dir("bert"),
            "--store",
            tuned,
            "--task",
            "greek",
            "--seeds",
            "0",
            "--label-words",
            "Ωmega,Ψsi",
            "--text-field",
            "sentence",
            "--data-files",
            f"train={data_dir / 'sst2/train.tsv'},validation={data_dir / 'sst2/dev.tsv'}",
            *TUNE,
        ),
        "label word 'Ωmega' is not in the vocabulary",
    )
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    one_error_line(
        invoke(
            "prompts",
            "import",
            tmp_path / "bad.pt",
            "--task",
            "x",
            "--store",
            tuned,
            "--model",
            tiny_model_dir("roberta"),
        ),
        "cannot read prompt file",
    )
    torch.save(torch.zeros(3, 7), tmp_path / "narrow.pt")
    one_error_line(
        invoke(
            "prompts",
            "import",
            tmp_path / "narrow.pt",
            "--task",
            "x",
            "--store",
            tuned,
            "--model",
            tiny_model_dir("roberta"),
        ),
        "prompt hidden size 7 does not match",
    )
    assert digest(tuned) == before


def experiment_file(tmp_path, model_dir, data_dir, tasks):
    path = tmp_path / "exp.toml"
    path.write_text(experiment_toml(tmp_path / "exp.zarr", model_dir, data_dir, tasks=tuple(tasks)))
    return path


def counting():
    """A progress factory that counts work per step name."""
    counts: dict[str, int] = {}

    @contextmanager
    def progress(description: str, total: int):
        counts.setdefault(description, 0)
        yield lambda n: counts.__setitem__(description, counts[description] + n)

    return progress, counts


def test_run_does_only_the_missing_work(tiny_model_dir, data_dir, tmp_path):
    path = experiment_file(tmp_path, tiny_model_dir("bert"), data_dir, ["sst2"])
    first = run(Experiment.load(path))
    assert [r.task for r in first] == ["sst2"] and len(first[0].top) == 10
    progress, counts = counting()
    second = run(replace(Experiment.load(path), tasks=("adv_sst2", "sst2")), progress=progress)
    assert [r.task for r in second] == ["sst2", "adv_sst2"]
    assert counts["tune sst2"] == 0 and "rank sst2" not in counts and counts["rank adv_sst2"] == 1
    store = open_store(tmp_path / "exp.zarr")
    assert store.ranking_spec("adv_sst2").baseline_task == "sst2"
    assert second[0].dev_accuracy == first[0].dev_accuracy


def test_run_command_prints_accuracy_top_neurons_and_the_store(tiny_model_dir, data_dir, tmp_path):
    path = experiment_file(tmp_path, tiny_model_dir("bert"), data_dir, ["sst2"])
    result = invoke("run", path)
    assert result.exit_code == 0, result.output
    assert "model accuracy per seed 0:" in result.output and "top skill neurons of sst2" in result.output
    assert f"store: {tmp_path / 'exp.zarr'}" in result.output
    (tmp_path / "broken.toml").write_text("store = ")
    one_error_line(invoke("run", tmp_path / "broken.toml"), "is not valid TOML")
    (tmp_path / "unknown.toml").write_text(path.read_text().replace("n_tokens", "tokens"))
    one_error_line(invoke("run", tmp_path / "unknown.toml"), "unknown TuneOptions setting(s) ['tokens']")


def test_shipped_experiment_files_parse():
    from importlib import resources

    folder = resources.files("actstore.data").joinpath("experiments")
    loaded = {p.name: Experiment.load(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}
    assert loaded["demo.toml"].tasks == ("rotten_tomatoes",) and loaded["demo.toml"].model == "all-minilm-l6-v2"
    paper = loaded["paper.toml"]
    assert len(paper.tasks) == 11 and paper.tune.n_tokens == 100 and paper.seeds == (0, 33, 34, 35, 36)
    assert paper.ordered_tasks()[-3:] == ["adv_sst2", "adv_qqp", "adv_qnli"]
    assert paper.models == ("roberta-base", "t5-base") and paper.layout == "pt"
    assert paper.prompts.kind == "robust-neurons" and paper.suppress.modes == ("zero", "mean", "noise")
    assert len(paper.suppression_runs()) == 8 * 3 + 3 * 2 and len(paper.transfer_tasks()) == 8
    assert [e.store for e in paper.each_model()] == ["runs/paper-roberta-base.zarr", "runs/paper-t5-base.zarr"]
    assert loaded["demo.toml"].layout == "pt" and loaded["demo.toml"].suppress is None


# ---- the paper as one command: data/experiments/paper.toml itself, at toy scale on a tiny 768-wide RoBERTa

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "data" / "experiments" / "paper.toml"
TASKS = ["sst2", "qnli", "adv_sst2", "adv_qnli"]


@pytest.fixture(scope="module")
def wide_roberta(tmp_path_factory):
    """A tiny random RoBERTa as wide as the released prompts (768) with one layer of 128 FFN neurons, so that the
    paper's released prompts load into it unchanged."""
    from tiny_models import make_tiny_model

    return make_tiny_model(
        "roberta",
        tmp_path_factory.mktemp("roberta768"),
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=12,
        intermediate_size=128,
    )


def toy_scale(data_dir: Path, tmp_path: Path) -> list[str]:
    """The overrides that shrink paper.toml to a test: the store and report in tmp_path; the tasks that exist offline
    (no QQP here); 2 of the released seeds (su, 33); 8 dev and 8 baseline examples of 32 text tokens; the suppression
    curve at 3 of its percentages with 2 random draws, in all three modes on SST-2 (cross suppression both ways on
    SST-2 and QNLI); one neuron page per task."""
    values = [
        f"report.out={tmp_path / 'report'}",
        f"tasks={json.dumps(TASKS)}",
        "seeds=[0, 33]",
        "data.dev_limit=8",
        "data.baseline_limit=8",
        f"data.data_dir={data_dir}",
        f"prompts.dir={data_dir / 'released-prompts'}",
        "extract.max_length=32",
        "extract.batch_size=8",
        "suppress.percents=[0, 5, 15]",
        "suppress.random_draws=2",
        'suppress.tasks=["sst2"]',
        "report.neurons=1",
    ]
    return ["--store", str(tmp_path / "paper.zarr"), *[arg for value in values for arg in ("--set", value)]]


def chunk_bytes(group: Path) -> int:
    """Bytes of an extraction's chunk files on disk, the texts and the metadata left out."""
    return sum(
        f.stat().st_size
        for f in group.rglob("*")
        if f.is_file() and f.name != "zarr.json" and f.relative_to(group).parts[0] != "text"
    )


def test_the_paper_toml_runs_end_to_end_on_a_tiny_model(wide_roberta, data_dir, tmp_path):

    args = ["run", PAPER, "--set", f"model={wide_roberta}", *toy_scale(data_dir, tmp_path)]
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [t["task"] for t in payload["tasks"]] == TASKS and payload["already_complete"] is False
    store = open_store(tmp_path / "paper.zarr")

    released = PromptSet.from_robust_neurons(data_dir / "released-prompts", "sst2", "roberta", 768)
    prompts = PromptSet.stored(store, "sst2")
    np.testing.assert_array_equal(prompts.vectors, released.vectors[[0, released.seeds.index(33)]])
    assert prompts.seeds == (0, 33) and prompts.seed_names == ("su", "33")
    assert store.prompt_spec("sst2").model.layout == "pt"
    for task in TASKS:
        ranking = store.ranking(task)
        pred = ranking["predictivity"].values
        assert np.isfinite(pred).all() and (pred >= 0.5).all() and (pred <= 1).all(), task
        assert store.ranking_spec(task).baseline_task == task.removeprefix("adv_")

    own = [f"sst2@sst2{suffix}" for suffix in ("", ".mean-layer", ".noise-layer")]
    cross = ["adv_sst2@sst2", "sst2@adv_sst2", "adv_qnli@qnli", "qnli@adv_qnli"]
    assert sorted(store.results("suppression")) == sorted(own + cross)
    for name in own + cross:
        curve = store.result("suppression", name)
        assert curve["accuracy_skill"].shape == (2, 3) and np.isfinite(curve["accuracy_skill"].values).all(), name
        assert curve["percent"].values.tolist() == [0, 5, 15] and curve["accuracy_random"].sizes["draw"] == 2
        np.testing.assert_array_equal(curve["accuracy_skill"].values[:, 0], curve["accuracy_random"].values[0, :, 0])
    assert store.result("suppression", "sst2@adv_sst2").attrs["spec"]["neurons_from"] == "adv_sst2"
    transfer = store.result("transfer", "sst2,qnli")
    np.testing.assert_allclose(np.diag(transfer["relative_mean"].values), 1.0)
    assert sorted(store.results("correlation")) == [",".join(TASKS), ",".join(TASKS) + ".zscore"]
    assert sorted(store.results("adversarial")) == ["adv_qnli@qnli", "adv_sst2@sst2"]
    index = (tmp_path / "report" / "index.md").read_text()
    assert (tmp_path / "report" / "index.html").is_file() and "suppression-noise-layer.png" in index
    kinds = [a["kind"] for a in payload["analyses"]]
    assert kinds == ["suppression"] * 7 + [
        "transfer",
        "correlation",
        "correlation",
        "adversarial",
        "adversarial",
        "report",
    ]

    # the dry run's bytes are what the extractions stored, chunk for chunk
    planned = invoke(*args, "--dry-run", "--json")
    assert planned.exit_code == 0, planned.output
    steps = json.loads(planned.stdout)["models"][0]["steps"]
    extractions = {s["what"]: s["bytes"] for s in steps if s["kind"] == "extract"}
    assert len(extractions) == 6
    for what, nbytes in extractions.items():
        assert chunk_bytes(tmp_path / "paper.zarr" / "extractions" / what) == nbytes, what

    # run again (the report left out, to save its drawing): every step and analysis is found stored, none redone
    progress, counts = counting()
    overrides = [a for flag, a in zip(args[2::2], args[3::2]) if flag == "--set"] + [f"store={tmp_path / 'paper.zarr'}"]
    analyses = []
    run(replace(Experiment.load(PAPER, overrides), report=None), progress=progress, analyses=analyses)
    assert not [name for name in counts if name.startswith(("tune", "rank", "suppress"))] and counts["transfer"] == 0
    assert [a.ran for a in analyses if a.kind in ("suppression", "transfer")] == [False] * 8


def test_the_paper_toml_dry_run_prints_bytes_and_gpu_hours_and_loads_nothing(monkeypatch):
    import actstore.experiment
    import actstore.models

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run loaded a model")

    monkeypatch.setattr(actstore.experiment, "load_model", refuse)
    monkeypatch.setattr(actstore.models, "load_model", refuse)
    monkeypatch.chdir(ROOT)  # the file names its store, report and released prompts relative to the repository
    written = [
        ROOT / "runs" / f"paper-{m}{suffix}" for m in ("roberta-base", "t5-base") for suffix in (".zarr", "-report")
    ]
    before = [p.exists() for p in written]
    result = invoke("run", PAPER, "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "roberta-base → runs/paper-roberta-base.zarr" in out and "t5-base → runs/paper-t5-base.zarr" in out
    assert "sst2/validation" in out and "qqp ← adv_qqp (zero)" in out and "GPU-h" in out
    assert "ASSUMED_EXAMPLES_PER_S" in out and "total: " in out
    if (ROOT / "../shared/data/released-prompts").is_dir():  # where the file looks for them, beside the repository
        assert "would stop" not in out and "import seeds 0,33,34,35,36 from ../shared/data/released-prompts" in out

    payload = json.loads(invoke("run", PAPER, "--dry-run", "--json", "--set", "extract.keep=acts").stdout)
    roberta, t5 = payload["models"]
    assert payload["assumptions"]["examples_per_s"] > 0 and payload["total"]["gpu_hours"] > 0
    dev = {m["model"]: next(s for s in m["steps"] if s["what"] == "sst2/validation") for m in (roberta, t5)}
    values = 872 * 5 * 12 * 100 * 3072 * 2  # METHOD.md "Sizes": layers × prompt tokens × FFN × 2 bytes, per example
    assert values < dev["roberta-base"]["bytes"] < 1.1 * values  # and seed; moments, scores and markers on top
    decoder = 872 * 5 * 12 * 1 * 3072 * 2  # T5: the decoder's 12 layers at the first decoding step too
    assert dev["t5-base"]["bytes"] > values + decoder
    kinds = {s["kind"] for s in roberta["steps"]}
    assert kinds == {"prompts", "extract", "rank", "suppress", "transfer", "correlate", "compare-adversarial", "report"}
    assert sum(s["gpu_hours"] for s in roberta["steps"]) == pytest.approx(roberta["gpu_hours"])
    assert payload["total"]["bytes"] == roberta["bytes"] + t5["bytes"]
    assert [p.exists() for p in written] == before


def test_the_layout_key_reaches_the_model_and_a_bad_one_is_one_error(tmp_path, monkeypatch):
    import actstore.experiment
    from actstore.errors import ActstoreError

    asked = {}

    def record(name, **kwargs):
        asked.update(kwargs, name=name)
        raise ActstoreError("stopped before loading")

    monkeypatch.setattr(actstore.experiment, "load_model", record)
    base = ["run", PAPER, "--set", "model=some-model", "--set", "prompts.from=tune", "--store", tmp_path / "s.zarr"]
    one_error_line(invoke(*base, "--set", "layout=sn"), "stopped before loading")
    assert asked == {"name": "some-model", "device": None, "layout": "sn"}
    one_error_line(invoke(*base), "stopped before loading")
    assert asked["layout"] == "pt"
    one_error_line(invoke(*base, "--set", "layout=bert"), "layout: 'bert' is not one of ['pt', 'sn', 'peft']")
    assert not (tmp_path / "s.zarr").exists()


def test_overrides_and_their_errors(tmp_path):
    from actstore.errors import ActstoreError
    from actstore.experiment import apply_overrides

    raw = {"models": ["a", "b"], "data": {"dev_limit": 5}, "seeds": [0]}
    changed = apply_overrides(raw, ["model=/some/dir", "data.dev_limit=8", 'tasks=["sst2"]', "report.out=x y"])
    assert changed == {
        "model": "/some/dir",
        "data": {"dev_limit": 8},
        "seeds": [0],
        "tasks": ["sst2"],
        "report": {"out": "x y"},
    }
    assert raw["models"] == ["a", "b"]  # a copy was changed
    for bad, fragment in (
        ("nokey", "expected KEY=VALUE"),
        ("=1", "expected KEY=VALUE"),
        ("seeds.x=1", "seeds is a value, not a section"),
    ):
        with pytest.raises(ActstoreError, match=fragment):
            apply_overrides(raw, [bad])
    one_error_line(invoke("run", PAPER, "--set", "data.devlimit=3"), "unknown data setting(s) ['devlimit']")
    one_error_line(invoke("run", PAPER, "--set", "store=runs/one.zarr"), "store:", "put {model} in it")
    one_error_line(invoke("run", PAPER, "--set", 'suppress.modes=["loud"]'), "suppress.modes.0: 'loud' is not one of")
    one_error_line(
        invoke("run", PAPER, "--set", "layout=sn"),
        "layout: the Robust-Neurons prompts were tuned in the 'pt' layout, not 'sn'",
    )
    one_error_line(
        invoke("run", PAPER, "--set", 'transfer.tasks=["sst2", "tweets3"]'),
        "transfer.tasks: 'tweets3' is not one of the experiment's tasks",
    )
    paper = Experiment.load(PAPER, ['models=["x/roberta-base", "t5-base"]'])
    assert [(e.model, e.store, e.report.out) for e in paper.each_model()] == [
        ("x/roberta-base", "runs/paper-roberta-base.zarr", "runs/paper-roberta-base-report"),
        ("t5-base", "runs/paper-t5-base.zarr", "runs/paper-t5-base-report"),
    ]
