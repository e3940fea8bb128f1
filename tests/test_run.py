"""The documented `tune`, `eval`, `run` and `prompts` commands on a tiny model and real SST-2 / AdvSST2 rows."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest
import torch

from actstore import open_store
from actstore.experiment import Experiment, run
from helpers import digest, experiment_toml, invoke, one_error_line

TUNE = ["--prompt-length", "3", "--max-steps", "4", "--eval-every", "2", "--batch-size", "4", "--max-length", "32",
        "--limit", "16"]


@pytest.fixture(scope="module")
def tuned(tiny_model_dir, data_dir, tmp_path_factory):
    """`actstore tune` of sst2 with two seeds on a tiny RoBERTa."""
    path = tmp_path_factory.mktemp("tune") / "s.zarr"
    result = invoke("tune", "--model", tiny_model_dir("roberta"), "--task", "sst2", "--seeds", "0,1", "--store", path,
                    "--data-dir", data_dir, *TUNE)
    assert result.exit_code == 0, result.output
    assert "prompt tuning of sst2 (16 dev examples)" in result.output and "over 2 seeds" in result.output
    return path


def test_tune_stores_prompts_and_curves(tuned):
    store = open_store(tuned)
    prompts, curves = store.prompts("sst2"), store.result("tuning", "sst2")
    assert prompts.seeds == (0, 1) and prompts.vectors.shape[:2] == (2, 3)
    np.testing.assert_array_equal(prompts.vectors, curves["prompt"].values)
    assert curves["dev_accuracy"].dims == ("seed", "evaluation") and (curves["wall_s"] > 0).all()
    assert store.prompt_spec("sst2").source.startswith("tuned")
    listed = invoke("info", tuned)
    assert "results/tuning: sst2" in listed.output and "prompts/sst2: 2 seeds × 3 tokens, tuned" in listed.output


def test_eval_with_the_clean_prompts_on_the_adversarial_task(tuned, tiny_model_dir, data_dir):
    result = invoke("eval", "--model", tiny_model_dir("roberta"), "--task", "adv_sst2", "--store", tuned,
                    "--data-dir", data_dir, "--limit", "12", "--max-length", "32", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["prompts_from"] == "sst2" and set(payload["accuracy"]) == {"0", "1"}
    stored = open_store(tuned).result("evaluation", "adv_sst2@sst2")
    np.testing.assert_array_equal(stored["accuracy"].values, [payload["accuracy"]["0"], payload["accuracy"]["1"]])
    assert abs(payload["mean"] - np.mean(stored["accuracy"].values)) < 1e-12


def test_prompts_export_and_import_round_trip(tuned, tiny_model_dir, tmp_path):
    for fmt in ("pt", "peft"):
        result = invoke("prompts", "export", "--task", "sst2", "--store", tuned, "--out", tmp_path / fmt, "--format", fmt)
        assert result.exit_code == 0, result.output
    assert torch.load(tmp_path / "pt" / "seed1.pt").shape == (3, 32)
    config = json.loads((tmp_path / "peft" / "seed0" / "adapter_config.json").read_text())
    assert config["peft_type"] == "PROMPT_TUNING" and config["num_virtual_tokens"] == 3
    original = open_store(tuned).prompts("sst2").vectors
    for fmt, files in (("pt", ["seed0.pt", "seed1.pt"]), ("peft", ["seed0", "seed1"])):
        copy = tmp_path / f"{fmt}.zarr"
        result = invoke("prompts", "import", *[tmp_path / fmt / f for f in files], "--task", "sst2", "--store", copy,
                        "--model", tiny_model_dir("roberta"), "--seeds", "0,1")
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(open_store(copy).prompts("sst2").vectors, original)


def test_bad_tuning_input_is_one_line_and_harmless(tuned, tiny_model_dir, data_dir, tmp_path):
    before = digest(tuned)
    base = ["tune", "--model", tiny_model_dir("roberta"), "--store", tuned, "--data-dir", data_dir]
    one_error_line(invoke(*base, "--task", "sst2", "--seeds", "0,0", *TUNE), "duplicate seeds")
    one_error_line(invoke(*base, "--task", "sst2", "--seeds", "0", *TUNE[2:], "--prompt-length", "0"),
                   "prompt length must be positive")
    one_error_line(invoke(*base, "--task", "sst2", "--seeds", "0", *TUNE[2:], "--prompt-length", "400", "--layout", "peft"),
                   "exceed the")  # peft: the prompt takes positions
    one_error_line(invoke("tune", "--model", tiny_model_dir("bert"), "--store", tuned, "--task", "greek", "--seeds", "0",
                          "--label-words", "Ωmega,Ψsi", "--text-field", "sentence", "--data-files",
                          f"train={data_dir / 'sst2/train.tsv'},validation={data_dir / 'sst2/dev.tsv'}", *TUNE),
                   "label word 'Ωmega' is not in the vocabulary")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    one_error_line(invoke("prompts", "import", tmp_path / "bad.pt", "--task", "x", "--store", tuned, "--model",
                          tiny_model_dir("roberta")), "cannot read prompt file")
    torch.save(torch.zeros(3, 7), tmp_path / "narrow.pt")
    one_error_line(invoke("prompts", "import", tmp_path / "narrow.pt", "--task", "x", "--store", tuned, "--model",
                          tiny_model_dir("roberta")), "prompt hidden size 7 does not match")
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
    assert len(paper.tasks) == 11 and paper.tune.n_tokens == 100 and len(paper.seeds) == 5
    assert paper.ordered_tasks()[-3:] == ["adv_sst2", "adv_qqp", "adv_qnli"]
