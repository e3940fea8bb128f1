"""Provenance in the store (source row ids, texts, token counts, hook points) and the top examples of a neuron."""

from __future__ import annotations

import json

import numpy as np
import pytest

from actstore.errors import ActstoreError
from actstore.examples import top_examples
from actstore.models import load_model
from actstore.ranking import rank
from helpers import SENTIMENT, invoke, one_error_line, run_toy, toy_split


@pytest.fixture(scope="module")
def stores(tiny_model_dir, data_dir, tmp_path_factory):
    """The same toy extraction keeping values (and bits), and keeping only bits; both ranked."""
    root = tmp_path_factory.mktemp("provenance")
    made = {
        keep: run_toy(root / f"{keep}.zarr", tiny_model_dir("roberta"), data_dir, keep=keep, n_dev=12)
        for keep in ("both", "bits")
    }
    for store in made.values():
        rank(store, "toy")
    return made


def test_the_store_keeps_row_ids_texts_token_counts_and_hook_points(stores, tiny_model_dir, data_dir):
    ds = stores["both"].extraction("toy", "validation")
    split = toy_split(data_dir, "validation", 12)
    np.testing.assert_array_equal(ds["example"].values, split.rows)  # the source rows, through --limit's sample
    assert not np.array_equal(split.rows, np.arange(12))
    assert [tuple(t) for t in ds["text"].values] == list(split.texts)
    model = load_model(str(tiny_model_dir("roberta")))
    expected = [int(model.encode([t], 128)["attention_mask"].sum()) for t in split.texts]
    np.testing.assert_array_equal(ds["length"].values, expected)
    attrs = stores["both"].root["extractions/toy/validation"].attrs
    assert attrs["text_fields"] == ["sentence"]
    assert attrs["hook_points"] == [
        f"roberta.encoder.layer.{i}.output.dense (input)" for i in range(model.spec.n_layers)
    ]


def test_row_ids_of_the_real_file_match_its_lines(data_dir, tmp_path, tiny_model_dir):
    """Row id r of a TSV is its (r + 1)-th line after the header: the text stored is the text of that line."""
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir("bert"), data_dir, n_dev=8)
    ds = store.extraction("toy", "validation")
    lines = (data_dir / "sst2" / "dev.tsv").read_text().splitlines()[1:]
    for row, text in zip(ds["example"].values, ds["text"].values[:, 0]):
        assert lines[row].split("\t")[0] == text


def test_top_examples_rank_by_activation_with_texts(stores):
    store = stores["both"]
    found = top_examples(store, "toy", 1, 5, token=2, seed=1, k=3)
    ds = store.extraction("toy", "validation")
    values = ds["acts"].sel(seed=1).isel(layer=1, token=2, neuron=5).values.astype(np.float64)
    order = np.argsort(-values, kind="stable")
    assert [r["position"] for r in found.top] == order[:3].tolist()
    assert [r["position"] for r in found.bottom] == order[::-1][:3].tolist()
    assert [r["activation"] for r in found.top] == values[order[:3]].tolist()
    for row in found.top + found.bottom:
        assert row["text"] == ds["text"].values[row["position"], 0]
        assert row["example"] == ds["example"].values[row["position"]]
        assert row["label"] == SENTIMENT.label_names[ds["label"].values[row["position"]]]
    baseline = store.baseline("toy").sel(seed=1).isel(layer=1, token=2, neuron=5).item()
    assert found.baseline == baseline
    assert found.accuracy == pytest.approx(np.mean((values > baseline) == (ds["label"].values == 1)))


def test_top_examples_on_a_bits_store_are_those_the_neuron_gets_right_and_wrong(stores):
    both = top_examples(stores["both"], "toy", 0, 3, token=1, k=12)
    bits = top_examples(stores["bits"], "toy", 0, 3, token=1, k=12)
    assert bits.ranked_by == "bit" and bits.accuracy == both.accuracy
    by_position = {r["position"]: r for r in both.top}
    predicts_one = bits.accuracy >= 0.5
    for row in bits.top:
        assert (row["above"] == predicts_one) == (row["label"] == "positive")
        assert row["above"] == by_position[row["position"]]["above"] and row["activation"] is None
    for row in bits.bottom:
        assert (row["above"] == predicts_one) != (row["label"] == "positive")
    assert len(bits.top) + len(bits.bottom) == 12


def test_the_default_token_is_the_neurons_best_in_the_ranking(stores):
    best = int(stores["both"].ranking("toy")["best_token"].values[0, 1, 7])
    assert top_examples(stores["both"], "toy", 1, 7).token == best


def test_the_examples_command(stores):
    path = stores["both"].location
    result = invoke("examples", "--store", path, "--task", "toy", "--layer", "1", "--neuron", "4", "-k", "2", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert len(found["top"]) == len(found["bottom"]) == 2 and found["ranked_by"] == "activation"
    table = invoke("examples", "--store", path, "--task", "toy", "--layer", "1", "--neuron", "4", "-k", "2")
    assert table.exit_code == 0 and "highest 2" in table.output and "lowest 2" in table.output
    assert found["top"][0]["text"].split()[0] in table.output
    one_error_line(
        invoke("examples", "--store", path, "--task", "toy", "--layer", "99", "--neuron", "4"),
        "layer 99 does not exist",
    )
    one_error_line(
        invoke("examples", "--store", path, "--task", "toy", "--layer", "1", "--neuron", "4", "--seed", "7"),
        "no seed 7",
    )


def test_bad_requests_are_refused(stores):
    with pytest.raises(ActstoreError, match="neuron 10000 does not exist"):
        top_examples(stores["both"], "toy", 0, 10000)
    with pytest.raises(ActstoreError, match="token 9 does not exist"):
        top_examples(stores["both"], "toy", 0, 0, token=9)
    with pytest.raises(ActstoreError, match="at least 1"):
        top_examples(stores["both"], "toy", 0, 0, k=0)


def test_t5_decoder_layers_have_their_own_hook_points_and_examples(tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "t5.zarr", tiny_model_dir("t5"), data_dir, n_dev=8)
    encoder = store.extraction_spec("toy", "validation")
    decoder_layer = encoder.n_layers  # the first decoder layer, numbered after the encoder's
    found = top_examples(store, "toy", decoder_layer, 0, k=2)
    assert found.token == 0 and len(found.top) == 2
    values = store.extraction("toy", "validation", stack="decoder")["acts"].isel(seed=0, layer=0, token=0, neuron=0)
    assert found.top[0]["activation"] == float(values.max())
    points = {
        stack: store.root[path].attrs["hook_points"]
        for stack, path in (
            ("encoder", "extractions/toy/validation"),
            ("decoder", "decoder_extractions/toy/validation"),
        )
    }
    assert all(p.startswith("encoder.block.") for p in points["encoder"])
    assert all(p.startswith("decoder.block.") for p in points["decoder"])


def test_verify_finds_damaged_texts_and_the_next_extract_rewrites_them(tiny_model_dir, data_dir, tmp_path):
    store = tmp_path / "s.zarr"
    common = [
        "extract",
        "--model",
        tiny_model_dir("bert"),
        "--task",
        "sst2",
        "--limit",
        "8",
        "--batch-size",
        "4",
        "--block",
        "4",
        "--data-dir",
        data_dir,
        "--store",
        store,
    ]
    assert invoke(*common, "--prompts", "random", "--seeds", "0", "--prompt-length", "3").exit_code == 0
    chunk = store / "extractions" / "sst2" / "validation" / "text" / "c" / "0" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    found = json.loads(invoke("verify", store, "--json").output)["damage"]
    assert [d["item"] for d in found] == ["text"] and "rewrites it from the same data" in found[0]["action"]
    again = invoke(*common)  # the store's prompts, the same data
    assert again.exit_code == 0, again.output
    assert chunk.read_bytes() == good
    assert invoke("verify", store).exit_code == 0
