"""Suppression: masks, the edit at the hook point against an independent weight edit, stored curves, the CLI."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from actstore import open_store, suppression as sup
from actstore.errors import ActstoreError
from actstore.evaluation import accuracy, evaluate, scores
from actstore.masks import neuron_count, random_ranks, skill_mask
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.ranking import rank
from actstore.store import Store
from actstore.suppression import SuppressOptions, activation_spread, baseline_mean, suppress, suppression_edit
from helpers import SENTIMENT, digest, invoke, one_error_line, run_toy, toy_split

N_NEURONS = 64  # FFN width of the tiny models


@pytest.fixture(scope="module")
def ranked(tiny_model_dir, data_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("suppress") / "s.zarr"
    rank(run_toy(path, tiny_model_dir("roberta"), data_dir, n_train=12, n_dev=10, seeds=(0, 1), n_tokens=3), "toy")
    return path


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load_model(str(tiny_model_dir("roberta")), device="cpu")


@pytest.fixture(scope="module")
def dev(data_dir):
    return toy_split(data_dir, "validation", 10)


def zeroed_copy(model, mask: np.ndarray):
    """The independent route: a copy whose FFN output projections ignore the masked neurons (zero weight columns)."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for layer, projection in enumerate(other.ffn_outputs[: len(mask)]):  # T5: the decoder stays
            projection.weight[:, torch.from_numpy(mask[layer])] = 0
    return other


def zeroed_neurons(edit, seed_index: int = 0) -> np.ndarray:
    """(layer, neuron) bool: which neurons an edit sets to zero, probed with activations of ones."""
    hook = edit(seed_index)
    probes = [hook(layer, torch.ones(1, 2, N_NEURONS)) for layer in range(2)]
    return np.stack([np.zeros(N_NEURONS, bool) if p is None else (p == 0).all(dim=(0, 1)).numpy() for p in probes])


def test_neuron_counts_are_floored():
    assert [neuron_count(p, 100) for p in (0, 7, 15, 100)] == [0, 7, 15, 100]
    assert neuron_count(15, 3072) == 460 and neuron_count(1, 64) == 0 and neuron_count(0.29, 3072 * 12) == 106


def test_skill_masks_take_the_top_percent_per_layer_and_globally(ranked):
    ranking = open_store(ranked).ranking("toy")
    pred = ranking["predictivity"].values
    per_layer = skill_mask(ranking, 10, "layer")
    assert per_layer.sum(axis=1).tolist() == [6, 6]
    for layer in range(2):
        assert pred[layer, per_layer[layer]].min() >= pred[layer, ~per_layer[layer]].max()
    overall = skill_mask(ranking, 10, "global")
    assert overall.sum() == 12 and pred[overall].min() >= pred[~overall].max()
    assert not skill_mask(ranking, 0, "global").any() and skill_mask(ranking, 100, "layer").all()


def test_random_masks_draw_the_same_count_per_layer_reproducibly():
    counts = np.array([3, 9])
    ranks = random_ranks(2, N_NEURONS, draw=0, seed=7)
    mask = ranks < counts[:, None]
    assert mask.sum(axis=1).tolist() == [3, 9]
    assert (ranks == random_ranks(2, N_NEURONS, draw=0, seed=7)).all()
    assert (ranks != random_ranks(2, N_NEURONS, draw=1, seed=7)).any()
    assert ((ranks < 2) <= mask).all()  # nested: a smaller percentage suppresses a subset


@pytest.mark.parametrize("kind", ["roberta", "t5_gated"])
def test_zero_mode_equals_zeroing_the_output_projection_columns(kind, tiny_model_dir, dev):
    model = load_model(str(tiny_model_dir(kind)), device="cpu")
    mask = random_ranks(2, N_NEURONS, draw=0) < 16
    prompt = torch.from_numpy(PromptSet.random((1,), 3, model.spec.hidden).vectors[0])
    words = model.label_ids(SENTIMENT)
    hooked = scores(model, dev, prompt, words, edit=suppression_edit(mask, "zero")(0))
    np.testing.assert_allclose(hooked, scores(zeroed_copy(model, mask), dev, prompt, words), rtol=0, atol=1e-6)
    # the edit does change the output (by little in a tiny random model, but far more than the tolerance above)
    assert np.abs(hooked - scores(model, dev, prompt, words)).max() > 1e-4
    assert (zeroed_neurons(suppression_edit(mask, "zero")) == mask).all()


def test_mean_and_noise_modes_rewrite_only_the_masked_neurons():
    mask = np.zeros((2, N_NEURONS), bool)
    mask[0, [1, 5]] = mask[1, 7] = True
    values = np.random.default_rng(0).uniform(0.5, 2.0, (2, 2, N_NEURONS))  # (seed, layer, neuron)
    act = torch.randn(3, 4000, N_NEURONS)
    replaced = suppression_edit(mask, "mean", values)(1)(0, act)
    assert torch.equal(replaced[..., ~torch.from_numpy(mask[0])], act[..., ~torch.from_numpy(mask[0])])
    assert torch.equal(replaced[..., 5], torch.full((3, 4000), float(values[1, 0, 5]), dtype=act.dtype))
    noisy = suppression_edit(mask, "noise", values, noise_seed=3)
    added = noisy(1)(0, act) - act
    assert (added[..., ~torch.from_numpy(mask[0])] == 0).all()
    np.testing.assert_allclose(added[..., [1, 5]].std(dim=(0, 1)).numpy(), values[1, 0, [1, 5]], rtol=0.03)
    assert torch.equal(noisy(1)(0, act), act + added)  # reseeded per run: repeats exactly
    assert not torch.equal(noisy(0)(0, act), act + added)


def test_spread_and_baseline_mean_equal_numpy_float64(ranked):
    store = open_store(ranked)
    acts = store.extraction("toy", "validation")["acts"].values
    assert acts.dtype == np.float16
    np.testing.assert_allclose(activation_spread(store, "toy"), acts.astype(np.float64).std(axis=(1, 3)), rtol=1e-10)
    np.testing.assert_allclose(baseline_mean(store, "toy"), store.baseline("toy").values.mean(axis=2), rtol=1e-12)


def test_suppression_curves_land_in_the_store_and_match_an_independent_computation(ranked, model, dev):
    store = Store(ranked, mode="a")
    options = SuppressOptions(percents=(0.0, 25.0, 50.0), random_draws=2)
    result = suppress(store, model, SENTIMENT, dev, options, batch_size=4)
    plain = evaluate(store, model, SENTIMENT, dev, batch_size=4)["accuracy"].values
    np.testing.assert_array_equal(result["accuracy_skill"].sel(percent=0).values, plain)
    np.testing.assert_array_equal(result["accuracy_random"].sel(percent=0).values, np.stack([plain, plain]))
    prompts = PromptSet.stored(store, "toy")
    half = skill_mask(store.ranking("toy"), 50, "layer")
    np.testing.assert_array_equal(
        result["accuracy_skill"].sel(percent=50).values,
        accuracy(zeroed_copy(model, half), SENTIMENT, dev, prompts, batch_size=4),
    )
    random_half = random_ranks(2, N_NEURONS, draw=1, seed=0) < 32
    np.testing.assert_array_equal(
        result["accuracy_random"].sel(draw=1, percent=50).values,
        accuracy(zeroed_copy(model, random_half), SENTIMENT, dev, prompts, batch_size=4),
    )
    stored = open_store(ranked).result("suppression", "toy@toy")
    assert stored["accuracy_skill"].dims == ("seed", "percent")
    assert stored["accuracy_random"].dims == ("draw", "seed", "percent")
    assert stored["percent"].values.tolist() == [0.0, 25.0, 50.0] and stored["seed"].values.tolist() == [0, 1]
    assert stored["suppressed"].values.tolist() == [[0, 0], [16, 16], [32, 32]]
    np.testing.assert_array_equal(stored["accuracy_random"].values, result["accuracy_random"].values)
    spec = stored.attrs["spec"]
    assert {
        "kind",
        "task",
        "split",
        "neurons_from",
        "mode",
        "scope",
        "percents",
        "random_draws",
        "model",
        "prompt_checksum",
        "seeds",
        "n_examples",
    } <= set(spec)
    assert (spec["kind"], spec["neurons_from"], spec["mode"], spec["n_examples"]) == ("suppression", "toy", "zero", 10)


def test_cross_suppression_uses_the_other_tasks_ranking(ranked, model, dev, monkeypatch):
    store = Store(ranked, mode="a")
    own = store.ranking("toy")
    other = own.copy()
    other["rank_in_layer"] = N_NEURONS - 1 - own["rank_in_layer"]  # the least predictive neurons of toy come first
    other["rank_global"] = 2 * N_NEURONS - 1 - own["rank_global"]
    store.put_ranking(dataclasses.replace(store.ranking_spec("toy"), task="other"), other)
    seen = []
    monkeypatch.setattr(
        sup, "accuracy", lambda *a, edit, **kw: seen.append(zeroed_neurons(edit)) or accuracy(*a, edit=edit, **kw)
    )
    suppress(store, model, SENTIMENT, dev, SuppressOptions(percents=(10.0,), random_draws=2), neurons_from="other")
    assert (seen[0] == skill_mask(other, 10, "layer")).all() and not (seen[0] & skill_mask(own, 10, "layer")).any()
    assert [m.sum(axis=1).tolist() for m in seen[1:]] == [[6, 6], [6, 6]]  # the random controls
    assert open_store(ranked).result("suppression", "toy@other").attrs["spec"]["neurons_from"] == "other"


def test_noise_runs_repeat_exactly_and_are_stored_beside_the_zero_curve(ranked, model, dev):
    store = Store(ranked, mode="a")
    options = SuppressOptions(percents=(0.0, 50.0), mode="noise", random_draws=2, noise_scale=3.0)
    first = suppress(store, model, SENTIMENT, dev, options, batch_size=5)
    again = suppress(store, model, SENTIMENT, dev, options, batch_size=5)
    assert first.identical(again)
    assert set(open_store(ranked).results("suppression")) >= {"toy@toy", "toy@toy.noise-layer"}
    mean = suppress(store, model, SENTIMENT, dev, dataclasses.replace(options, mode="mean", scope="global"))
    assert mean.attrs["spec"]["mode"] == "mean" and mean["suppressed"].sel(percent=50).sum() == N_NEURONS


@pytest.mark.parametrize(
    "change, message",
    [
        ({"percents": (0.0, 120.0)}, "must lie in 0–100, got 120.0"),
        ({"percents": (-1.0,)}, "must lie in 0–100"),
        ({"percents": (float("nan"),)}, "must lie in 0–100"),
        ({"percents": ()}, "at least one percentage"),
        ({"mode": "blur"}, "unknown suppression mode 'blur'"),
        ({"scope": "head"}, "unknown suppression scope 'head'"),
        ({"random_draws": 1}, "at least 2"),
        ({"noise_scale": 0.0}, "noise scale"),
    ],
)
def test_bad_options_are_refused(change, message):
    with pytest.raises(ActstoreError, match=message):
        SuppressOptions(**change)


def test_a_task_without_ranking_or_with_one_seed_is_refused(ranked, model, dev, tiny_model_dir, data_dir, tmp_path):
    before = digest(ranked)
    with pytest.raises(ActstoreError, match="task 'nope' has no ranking"):
        suppress(Store(ranked, mode="a"), model, SENTIMENT, dev, neurons_from="nope")
    assert digest(ranked) == before
    single = run_toy(tmp_path / "one.zarr", tiny_model_dir("roberta"), data_dir, n_train=4, n_dev=4, seeds=(0,))
    rank(single, "toy")
    with pytest.raises(ActstoreError, match=r"mean ± std over seeds.*1 seed"):
        suppress(single, model, SENTIMENT, dev)
    assert single.results("suppression") == []


# ---- the command line, on the registry's SST-2 and AdvSST2 (its clean source's prompts and baseline)


@pytest.fixture(scope="module")
def cli_store(tiny_model_dir, data_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-suppress") / "s.zarr"
    common = (
        "--model",
        tiny_model_dir("roberta"),
        "--store",
        path,
        "--limit",
        "12",
        "--batch-size",
        "4",
        "--block",
        "4",
        "--data-dir",
        data_dir,
    )
    for args in (
        ("extract", "--task", "sst2", "--prompts", "random", "--seeds", "0,1", "--prompt-length", "3", *common),
        ("extract", "--task", "adv_sst2", "--split", "validation", *common),
        ("rank", "--store", path, "--task", "sst2"),
        ("rank", "--store", path, "--task", "adv_sst2"),
    ):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
    return path


def suppress_cli(store, data_dir, *args):
    return invoke(
        "suppress",
        "--store",
        store,
        "--limit",
        "12",
        "--batch-size",
        "4",
        "--data-dir",
        data_dir,
        "--random-draws",
        "2",
        *args,
    )


def test_cli_prints_the_curve_and_json(cli_store, data_dir):
    result = suppress_cli(cli_store, data_dir, "--task", "sst2", "--percent", "0,50")
    assert result.exit_code == 0, result.output
    assert "skill acc" in result.output and "results/suppression/sst2@sst2" in result.output
    payload = json.loads(suppress_cli(cli_store, data_dir, "--task", "sst2", "--percent", "0,50", "--json").output)
    zero, half = payload["rows"]
    assert (zero["percent"], zero["neurons"], half["neurons"]) == (0.0, 0, 64)
    assert zero["skill_mean"] == zero["random_mean"] and zero["random_std"] == 0.0
    stored = open_store(cli_store).result("suppression", "sst2@sst2")
    assert half["skill_mean"] == pytest.approx(float(stored["accuracy_skill"].sel(percent=50).mean()))


def test_cli_cross_suppression_in_both_directions(cli_store, data_dir):
    for task, source in (("adv_sst2", "sst2"), ("sst2", "adv_sst2")):
        result = suppress_cli(cli_store, data_dir, "--task", task, "--neurons-from", source, "--percent", "0,25")
        assert result.exit_code == 0, result.output
        spec = open_store(cli_store).result("suppression", f"{task}@{source}").attrs["spec"]
        assert (spec["neurons_from"], spec["prompts_from"], spec["n_examples"]) == (source, "sst2", 12)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--task", "sst2", "--percent", "0,120"), "percentages must lie in 0–100, got 120.0"),
        (("--task", "sst2", "--percent", "5,x"), "expected comma-separated percentages"),
        (("--task", "sst2", "--random-draws", "1"), "--random-draws must be at least 2"),
        (("--task", "qnli"), "task 'qnli' has no ranking"),
        (("--task", "sst2", "--neurons-from", "qnli"), "task 'qnli' has no ranking"),
    ],
)
def test_cli_bad_input_is_one_line_and_leaves_the_store_untouched(cli_store, data_dir, args, fragment):
    before = digest(cli_store)
    one_error_line(suppress_cli(cli_store, data_dir, *args), fragment)
    assert digest(cli_store) == before
