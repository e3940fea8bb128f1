"""Eq. 2–5 out of core, checked for exact equality against plain numpy float64."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from actstore import open_store
from actstore.errors import ActstoreError, StoreFault
from actstore.ranking import rank, ranking_dataset, top_neurons
from actstore.specs import ModelSpec, RankingSpec
from actstore.store import RankingReader, Store
from helpers import reference_ranking, run_toy


@pytest.fixture(scope="module")
def ranked(tiny_model_dir, data_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("rank") / "s.zarr"
    store = run_toy(path, tiny_model_dir("roberta"), data_dir, n_train=20, n_dev=22, seeds=(0, 1, 2), n_tokens=4)
    rank(store, "toy", baseline_from="toy")
    return path


def test_accuracies_and_predictivities_equal_an_independent_float64_computation(ranked):
    store = open_store(ranked)
    train, dev = store.extraction("toy", "train"), store.extraction("toy", "validation")
    expected = reference_ranking(train["acts"].values, dev["acts"].values, dev["label"].values)
    ranking = store.ranking("toy")
    np.testing.assert_array_equal(store.baseline("toy").values, expected["baseline"])
    np.testing.assert_array_equal(ranking["accuracy"].values, expected["accuracy"])
    np.testing.assert_array_equal(ranking["predictivity"].values, expected["predictivity"])
    assert ranking["predictivity"].dims == ("layer", "neuron")
    assert (ranking["predictivity"] >= 0.5).all()


def test_rankings_order_neurons_by_predictivity(ranked):
    ranking = open_store(ranked).ranking("toy")
    pred = np.round(ranking["predictivity"].values, 12)  # ranked on 12 decimals (last-bit noise ties)
    for layer in range(pred.shape[0]):
        order = np.argsort(ranking["rank_in_layer"].values[layer])
        assert np.all(np.diff(pred[layer, order]) <= 0)
    glob = ranking["rank_global"].values.ravel()
    assert sorted(glob) == list(range(pred.size))
    assert np.all(np.diff(pred.ravel()[np.argsort(glob)]) <= 0)
    top = top_neurons(ranking, 3)
    assert round(top[0]["predictivity"], 12) == pred.max() and [r["rank"] for r in top] == [1, 2, 3]


def test_top_neurons_tied_in_all_but_the_last_bit_show_one_value_in_rank_order():
    accuracy = np.array([[0.6, 0.8], [0.7, 0.7], [0.8, 0.6]]).reshape(3, 1, 1, 2)  # 3 seeds, summed in 2 orders
    ranking = ranking_dataset(accuracy, np.arange(3))
    assert ranking["predictivity"].values[0, 0] != ranking["predictivity"].values[0, 1]  # last-bit noise
    top = top_neurons(ranking, 2)
    assert [r["neuron"] for r in top] == [0, 1] and top[0]["predictivity"] == top[1]["predictivity"] == 0.7


def test_ranking_dataset_handles_ties_and_inhibitory_neurons():
    accuracy = np.array([0.9, 0.1, 0.5, 0.1]).reshape(1, 1, 1, 4)  # one seed, layer, token; 4 neurons
    ds = ranking_dataset(accuracy, np.array([0]))
    np.testing.assert_allclose(ds["predictivity"].values[0], [0.9, 0.9, 0.5, 0.9])
    assert list(ds["rank_in_layer"].values[0]) == [0, 1, 3, 2]


def test_baseline_from_another_task_must_share_the_prompts(ranked, tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "other.zarr", tiny_model_dir("roberta"), data_dir, seeds=(5, 6), n_tokens=4)
    with pytest.raises(ActstoreError, match="no train baseline for 'sst2'"):
        rank(store, "toy", baseline_from="sst2")


def test_a_corrupted_chunk_is_reported(tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir("bert"), data_dir)
    chunk = tmp_path / "s.zarr" / "extractions" / "toy" / "validation" / "acts" / "c" / "0" / "1" / "0" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(StoreFault, match="fails its CRC32C checksum"):
        rank(store, "toy")


def test_equal_predictivities_tie_whatever_their_last_bit():
    """mean(0.6, 0.5, 0.6) and mean(0.7, 0.5, 0.5) differ in the last bit; both neurons are equally
    predictive and are ranked by neuron index, not by rounding noise."""
    accuracy = np.array([[0.7, 0.6, 0.5], [0.5, 0.5, 0.5], [0.5, 0.6, 0.5]]).reshape(3, 1, 1, 3)
    ds = ranking_dataset(accuracy, np.array([0, 1, 2]))
    assert ds["predictivity"].values[0, 0] != ds["predictivity"].values[0, 1]
    assert list(ds["rank_in_layer"].values[0]) == [0, 1, 2] and list(ds["rank_global"].values[0]) == [0, 1, 2]


def test_a_split_of_one_class_is_not_ranked(tiny_model_dir, data_dir, tmp_path):
    """A neuron's accuracy against one class alone is meaningless (predictivity 1.0 for every neuron)."""
    from actstore.store import Store
    from actstore.store.attrs import put_attrs

    store = run_toy(tmp_path / "s.zarr", tiny_model_dir("bert"), data_dir)
    writer = Store(tmp_path / "s.zarr", mode="a")  # through actstore, so that the seal records the new chunk
    group = writer.root["extractions/toy/validation"]
    group["label"][...] = 1
    put_attrs(group, dict(group.attrs))
    with pytest.raises(ActstoreError, match="one class only"):
        rank(store, "toy")
    with pytest.raises(ActstoreError, match="at least 1"):
        top_neurons(rank(store, "toy", split="train"), 0)


def test_rank_reads_its_chunks_without_a_warning(tiny_model_dir, data_dir, tmp_path):
    """rank reads several storage chunks per task; nothing about that may reach the user as a warning."""
    import warnings

    store = run_toy(tmp_path / "s.zarr", tiny_model_dir("bert"), data_dir, n_dev=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ranking = rank(store, "toy")
    assert ranking["predictivity"].shape[1] == store.extraction("toy").sizes["neuron"]


# ---- the typed reader a store hands out (issue 20): the spec parsed once, beside the dataset

MODEL = ModelSpec("tiny", "r1", "bert", "mlm_head", n_layers=3, n_neurons=8, hidden=4, max_positions=64)
#: a sub-task's spec: its tuples and optional fields come back from the attributes as they were
SPEC = RankingSpec(
    task="tweets",
    split="validation",
    baseline_task="tweets",
    model=MODEL,
    prompt_checksum="sha256:" + "0" * 16,
    seeds=(0, 3),
    n_examples=10,
    subtask="positive-vs-negative",
    positive=("positive",),
    negative=("negative",),
)


@pytest.fixture
def subtask_store(tmp_path) -> Store:
    store = Store(tmp_path / "s.zarr", mode="a")
    accuracy = np.random.default_rng(0).integers(0, 11, (2, 3, 2, 8)) / 10  # (seed, layer, token, neuron)
    store.put_ranking(SPEC, ranking_dataset(accuracy, np.asarray(SPEC.seeds)))
    return store


def test_a_ranking_reader_holds_the_stored_spec_and_the_ranking(subtask_store):
    reader = subtask_store.ranking_reader(SPEC.name)
    assert reader.spec == SPEC == subtask_store.ranking_spec(SPEC.name)
    ranking = subtask_store.ranking(SPEC.name)
    xr.testing.assert_identical(reader.dataset, ranking)
    xr.testing.assert_identical(reader.predictivity, ranking["predictivity"])
    assert reader.best_token(1, 2, 5) == int(ranking["best_token"].sel(seed=3, layer=2, neuron=5))
    assert RankingReader.from_dataset(ranking).spec == SPEC


def test_a_missing_ranking_is_the_stores_clear_error(subtask_store):
    with pytest.raises(ActstoreError, match=r"^task 'sst2' has no ranking in .+ yet: run actstore rank --task sst2$"):
        subtask_store.ranking_reader("sst2")


def test_a_dataset_without_a_spec_is_no_ranking(subtask_store):
    with pytest.raises(StoreFault, match="without its spec"):
        RankingReader.from_dataset(subtask_store.ranking(SPEC.name).drop_attrs())
