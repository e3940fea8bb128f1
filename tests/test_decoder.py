"""T5's decoder neurons (beyond the papers): captured at the first decoding step, ranked with the same kernels,
suppressed at the same hook point and drawn in the figures, marked by a ``layer_stack`` coordinate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actstore import analysis, open_store
from actstore.errors import ActstoreError
from actstore.evaluation import scores
from actstore.extraction import ExtractOptions
from actstore.masks import random_ranks
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.ranking import rank, recompute_baseline, top_neurons
from actstore.report import layer_figure
from actstore.store import Store
from actstore.suppression import SuppressOptions, baseline_mean, suppress, suppression_edit
from helpers import SENTIMENT, extract_interrupted, invoke, reference_ranking, run_toy, toy_split
from test_extraction import independent_activations
from test_suppression import zeroed_copy

N_ENCODER, N_DECODER, N_NEURONS = 2, 3, 64


@pytest.fixture(scope="module")
def t5_store(tiny_model_dir, data_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("decoder") / "s.zarr"
    store = run_toy(path, tiny_model_dir("t5_gated"), data_dir, n_train=12, n_dev=10)
    rank(store, "toy")
    return path


@pytest.mark.parametrize("kind", ["t5", "t5_gated"])
def test_decoder_activations_are_the_ffn_input_at_the_first_decoding_step(kind, tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir(kind), data_dir)
    model = load_model(str(tiny_model_dir(kind)))
    assert model.spec.n_layers == N_ENCODER and model.spec.n_decoder_layers == N_DECODER
    assert store.stacks("toy", "validation") == ["encoder", "decoder"]
    ds, enc = store.extraction("toy", "validation", stack="decoder"), store.extraction("toy", "validation")
    assert ds["acts"].dims == ("seed", "example", "layer", "token", "neuron")
    assert ds["acts"].shape == (2, 10, N_DECODER, 1, N_NEURONS)
    assert ds["layer"].values.tolist() == [2, 3, 4]  # numbered after the encoder's layers
    split = toy_split(data_dir, "validation", 10)
    for s in range(2):
        prompt = torch.from_numpy(PromptSet.stored(store, "toy").vectors[s])
        expected = independent_activations(model, split.texts, prompt, stack="decoder")
        np.testing.assert_array_equal(ds["acts"].values[s], expected.astype(np.float16))
    for name in ("label", "prediction", "scores"):
        np.testing.assert_array_equal(ds[name].values, enc[name].values)
    assert store.summary()["extractions"]["toy/validation/decoder"]["state"] == "complete"


def test_encoder_only_models_have_no_decoder_stack(tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir("bert"), data_dir)
    assert store.stacks("toy", "validation") == ["encoder"]
    with pytest.raises(ActstoreError, match=r"no extraction toy/validation \(decoder\)"):
        store.extraction("toy", "validation", stack="decoder")
    assert rank(store, "toy")["layer_stack"].values.tolist() == ["encoder", "encoder"]
    printed = invoke("rank", "--store", tmp_path / "s.zarr", "--task", "toy").output
    assert "predictivity" in printed and "stack" not in printed  # the column shows only for T5


def test_decoder_neurons_are_ranked_with_the_encoders_against_numpy_float64(t5_store):
    store = open_store(t5_store)
    ranking = store.ranking("toy")
    assert ranking["layer_stack"].values.tolist() == ["encoder"] * N_ENCODER + ["decoder"] * N_DECODER
    labels = store.extraction("toy")["label"].values
    for stack, layers in (("encoder", slice(0, N_ENCODER)), ("decoder", slice(N_ENCODER, None))):
        train, dev = (store.extraction("toy", split, stack=stack)["acts"].values for split in ("train", "validation"))
        ref = reference_ranking(train, dev, labels)
        np.testing.assert_array_equal(store.baseline("toy", stack).values, ref["baseline"])
        np.testing.assert_array_equal(recompute_baseline(store, "toy", stack), ref["baseline"])
        tokens = ref["accuracy"].shape[2]
        np.testing.assert_allclose(ranking["accuracy"].values[:, layers, :tokens], ref["accuracy"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(ranking["predictivity"].values[layers], ref["predictivity"], rtol=0, atol=1e-12)
    assert np.isnan(ranking["accuracy"].values[:, N_ENCODER:, 1:]).all()  # the decoder has one decoding step
    assert (ranking["best_token"].values[:, N_ENCODER:] == 0).all()
    order = np.argsort(-ranking["predictivity"].values.ravel(), kind="stable")
    assert np.sort(ranking["rank_global"].values.ravel()).tolist() == list(range(5 * N_NEURONS))
    assert ranking["rank_global"].values.ravel()[order[0]] == 0
    top = top_neurons(ranking, 5 * N_NEURONS)
    assert {row["stack"] for row in top} == {"encoder", "decoder"}
    assert all((row["stack"] == "decoder") == (row["layer"] >= N_ENCODER) for row in top)


def test_suppressing_decoder_neurons_equals_zeroing_their_output_projection_columns(tiny_model_dir, data_dir):
    model = load_model(str(tiny_model_dir("t5_gated")), device="cpu")
    mask = random_ranks(N_ENCODER + N_DECODER, N_NEURONS, draw=0) < 16
    mask[:N_ENCODER] = False  # the decoder alone
    dev = toy_split(data_dir, "validation", 10)
    prompt = torch.from_numpy(PromptSet.random((1,), 3, model.spec.hidden).vectors[0])
    words = model.label_ids(SENTIMENT)
    hooked = scores(model, dev, prompt, words, edit=suppression_edit(mask, "zero")(0))
    np.testing.assert_allclose(hooked, scores(zeroed_copy(model, mask), dev, prompt, words), rtol=0, atol=1e-6)
    assert np.abs(hooked - scores(model, dev, prompt, words)).max() > 1e-4


def test_suppression_curves_include_the_decoder_layers(t5_store, tiny_model_dir, data_dir):
    store = Store(t5_store, mode="a")
    model = load_model(str(tiny_model_dir("t5_gated")), device="cpu")
    means = baseline_mean(store, "toy")
    assert means.shape == (2, N_ENCODER + N_DECODER, N_NEURONS)
    np.testing.assert_array_equal(means[:, N_ENCODER:], store.baseline("toy", "decoder").values[:, :, 0])
    with store.writing():
        result = suppress(
            store,
            model,
            SENTIMENT,
            toy_split(data_dir, "validation", 10),
            SuppressOptions(percents=(0.0, 50.0), mode="mean", random_draws=2),
            batch_size=2,
        )
    assert result["layer_stack"].values.tolist() == ["encoder"] * N_ENCODER + ["decoder"] * N_DECODER
    assert result["suppressed"].sel(percent=50.0).values.tolist() == [32] * 5


def test_an_interrupted_t5_extraction_resumes_both_stacks_identically(tiny_model_dir, data_dir, tmp_path):
    reference = run_toy(tmp_path / "ref.zarr", tiny_model_dir("t5"), data_dir, store_train=False)
    store = Store(tmp_path / "cut.zarr", mode="a")
    extract_interrupted(
        store,
        tiny_model_dir("t5"),
        data_dir,
        PromptSet.stored(reference, "toy"),
        ExtractOptions(batch_size=2, block=4, segment=1),
    )
    for stack in ("encoder", "decoder"):
        np.testing.assert_array_equal(reference.baseline("toy", stack).values, store.baseline("toy", stack).values)
        np.testing.assert_array_equal(
            reference.extraction("toy", stack=stack)["acts"].values, store.extraction("toy", stack=stack)["acts"].values
        )


def test_the_distribution_figures_mark_each_stack(t5_store):
    rows = analysis.distributions(open_store(t5_store), ["toy"])
    assert [row["task"] for row in rows] == ["toy (encoder)", "toy (decoder)"]
    ranking = open_store(t5_store).ranking("toy")
    decoder = ranking["predictivity"].values[N_ENCODER:]
    assert rows[1]["predictivity"]["med"] == pytest.approx(np.median(decoder))


def test_the_layer_figure_shows_where_the_top_neurons_are_by_stack(t5_store):
    store = open_store(t5_store)
    shares = analysis.skill_layers(store, ["toy"], percent=10.0)
    ranks = store.ranking("toy")["rank_global"].values
    top = ranks < int(0.10 * ranks.size)  # 32 of 320 neurons
    np.testing.assert_allclose(shares.sel(task="toy").values, top.sum(axis=1) / top.sum())
    assert shares["layer_stack"].values.tolist() == ["encoder"] * N_ENCODER + ["decoder"] * N_DECODER
    ax = layer_figure(shares).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["E0", "E1", "D0", "D1", "D2"]


def test_rank_prints_the_stack_of_each_top_neuron(t5_store):
    result = invoke("rank", "--store", t5_store, "--task", "toy", "--top", 5 * N_NEURONS)
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "predictivity" in line)
    assert "stack" in header and "decoder" in result.output and "encoder" in result.output
