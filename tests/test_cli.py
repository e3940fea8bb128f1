"""The documented commands through Typer's CliRunner, and one clear line for every kind of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from actstore import open_store
from actstore.ranking import PREDICTIVITY_DECIMALS
from helpers import digest, invoke, one_error_line


@pytest.fixture(scope="module")
def store(tiny_model_dir, data_dir, tmp_path_factory):
    """`actstore extract` (train streamed + validation) and `actstore rank` on a tiny RoBERTa and real SST-2."""
    path = tmp_path_factory.mktemp("cli") / "sst2.zarr"
    result = invoke(
        "extract",
        "--model",
        tiny_model_dir("roberta"),
        "--task",
        "sst2",
        "--prompts",
        "random",
        "--seeds",
        "0,1",
        "--prompt-length",
        "4",
        "--limit",
        "24",
        "--batch-size",
        "4",
        "--block",
        "8",
        "--data-dir",
        data_dir,
        "--store",
        path,
    )
    assert result.exit_code == 0, result.output
    assert "sst2/train: 24 examples × 2 seeds → baseline in" in result.output
    assert "sst2/validation: 24 examples × 2 seeds → activations" in result.output
    return path


def test_rank_prints_the_top_neurons_and_stores_the_ranking(store):
    result = invoke("rank", "--store", store, "--task", "sst2", "--top", "5")
    assert result.exit_code == 0, result.output
    assert "top 5 skill neurons of sst2" in result.output and "model accuracy per seed" in result.output
    ranking = open_store(store).ranking("sst2")
    predictivity = ranking["predictivity"].values
    assert f"{predictivity.max():.4f}" in result.output
    first = np.unravel_index(int(np.argmin(ranking["rank_global"].values)), predictivity.shape)
    # the first of the neurons tied at the top, compared as rank compares them (PREDICTIVITY_DECIMALS)
    assert round(predictivity[first], PREDICTIVITY_DECIMALS) == round(predictivity.max(), PREDICTIVITY_DECIMALS)


def test_rank_json(store):
    result = invoke("rank", "--store", store, "--task", "sst2", "--top", "3", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["baseline_task"] == "sst2" and len(payload["top"]) == 3 and len(payload["model_accuracy"]) == 2
    assert payload["top"][0]["predictivity"] >= payload["top"][2]["predictivity"]


def test_info(store):
    invoke("rank", "--store", store, "--task", "sst2")
    result = invoke("info", store)
    assert result.exit_code == 0, result.output
    assert "extractions/sst2/validation: complete, 6/6 blocks, 24 examples × 2 seeds" in result.output
    assert "extractions/sst2/train: complete" in result.output and "baseline only" in result.output
    summary = json.loads(invoke("info", store, "--json").output)
    assert summary["schema_version"] == 3 and "sst2" in summary["rankings"]


def test_analyst_api_speaks_named_dimensions(store):
    ds = open_store(store).extraction(task="sst2", split="validation")
    by_label = ds.acts.sel(layer=1, neuron=5).astype("float32").groupby(ds.label).mean()
    assert by_label.sizes["label"] == 2 and set(by_label.dims) == {"seed", "token", "label"}
    best = open_store(store).ranking(task="sst2").predictivity.sel(layer=1).argmax("neuron")
    assert 0 <= int(best) < ds.sizes["neuron"]


def extract_into(store, model_dir, *extra):
    return invoke(
        "extract",
        "--model",
        model_dir,
        "--store",
        store,
        "--split",
        "validation",
        "--prompts",
        "random",
        "--seeds",
        "0,1",
        "--prompt-length",
        "4",
        "--limit",
        "8",
        "--block",
        "8",
        *extra,
    )


def test_unknown_model(store, data_dir):
    before = digest(store)
    one_error_line(
        extract_into(store, "no-such-model-xyz", "--task", "sst2", "--data-dir", data_dir),
        "unknown model 'no-such-model-xyz'",
    )
    assert digest(store) == before


def test_unknown_task(store, tiny_model_dir):
    before = digest(store)
    one_error_line(extract_into(store, tiny_model_dir("roberta"), "--task", "nope"), "unknown task 'nope'")
    assert digest(store) == before


def test_missing_data_files(store, tiny_model_dir, tmp_path):
    before = digest(store)
    one_error_line(
        extract_into(
            store, tiny_model_dir("roberta"), "--task", "sst2", "--data-files", f"validation={tmp_path / 'absent.csv'}"
        ),
        "absent.csv",
    )
    assert digest(store) == before


def test_empty_split(store, tiny_model_dir, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("sentence,label\n")
    before = digest(store)
    one_error_line(
        extract_into(store, tiny_model_dir("roberta"), "--task", "sst2", "--data-files", f"validation={empty}"), "empty"
    )
    assert digest(store) == before


def test_prompt_of_the_wrong_hidden_size(store, tiny_model_dir, data_dir, tmp_path):
    torch.save(torch.zeros(4, 7), tmp_path / "p.pt")
    before = digest(store)
    result = invoke(
        "extract",
        "--model",
        tiny_model_dir("roberta"),
        "--task",
        "sst2",
        "--split",
        "validation",
        "--prompts",
        tmp_path / "p.pt",
        "--data-dir",
        data_dir,
        "--store",
        store,
        "--limit",
        "8",
    )
    one_error_line(result, "prompt hidden size 7 does not match")
    assert digest(store) == before


def test_other_settings_against_the_store(store, tiny_model_dir, data_dir):
    before = digest(store)
    result = invoke(
        "extract",
        "--model",
        tiny_model_dir("roberta"),
        "--task",
        "sst2",
        "--split",
        "validation",
        "--prompts",
        "random",
        "--seeds",
        "0,1",
        "--prompt-length",
        "4",
        "--limit",
        "24",
        "--batch-size",
        "4",
        "--block",
        "8",
        "--dtype",
        "float32",
        "--data-dir",
        data_dir,
        "--store",
        store,
    )
    one_error_line(result, "was extracted with different settings", "dtype: 'float16' → 'float32'")
    assert digest(store) == before


def test_non_binary_labels_for_rank(tiny_model_dir, tmp_path):
    for name, offset in (("three.csv", 0), ("three_dev.csv", 12)):  # train and validation: other rows
        rows = [f"movie number {i + offset} was {w},{i % 3}" for i, w in enumerate(["good", "bad", "fine"] * 4)]
        (tmp_path / name).write_text("\n".join(["sentence,label", *rows]) + "\n")
    path = tmp_path / "three.zarr"
    result = invoke(
        "extract",
        "--model",
        tiny_model_dir("bert"),
        "--task",
        "three",
        "--label-words",
        "bad,fine,good",
        "--text-field",
        "sentence",
        "--data-files",
        f"train={tmp_path / 'three.csv'},validation={tmp_path / 'three_dev.csv'}",
        "--prompts",
        "random",
        "--prompt-length",
        "2",
        "--store",
        path,
    )
    assert result.exit_code == 0, result.output
    before = digest(path)
    one_error_line(invoke("rank", "--store", path, "--task", "three"), "binary labels", "3 classes")
    assert digest(path) == before


def test_store_of_another_schema_version(store, tmp_path):
    import shutil

    copy = tmp_path / "v1.zarr"
    shutil.copytree(store, copy)
    meta = json.loads((copy / "zarr.json").read_text())
    meta["attributes"]["actstore"]["schema_version"] = 1
    (copy / "zarr.json").write_text(json.dumps(meta))
    before = digest(copy)
    one_error_line(invoke("info", copy), "schema version 1", "version 3 only", "extract again")
    one_error_line(invoke("rank", "--store", copy, "--task", "sst2"), "schema version 1")
    assert digest(copy) == before


def test_not_a_store(tmp_path):
    one_error_line(invoke("info", tmp_path / "nothing.zarr"), "no actstore store")


def test_corrupted_chunk(store, tmp_path):
    import shutil

    copy = tmp_path / "bad.zarr"
    shutil.copytree(store, copy)
    chunk = copy / "extractions/sst2/validation/acts/c/1/2/0/0/0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))
    before = digest(copy)
    one_error_line(invoke("rank", "--store", copy, "--task", "sst2"), "fails its CRC32C checksum", "actstore verify")
    assert digest(copy) == before


def test_non_writable_path(tiny_model_dir, data_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    one_error_line(
        extract_into(blocker / "s.zarr", tiny_model_dir("roberta"), "--task", "sst2", "--data-dir", data_dir),
        "cannot write a store",
    )
