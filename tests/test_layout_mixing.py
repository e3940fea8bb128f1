"""Layouts on the command line: what a store records, what it refuses to combine, and the label ids it scores."""

from __future__ import annotations

import json

import pytest
import zarr

from actstore import open_store
from helpers import digest, invoke, one_error_line

SMALL = ["--max-length", "32", "--limit", "16"]
TUNE = ["--prompt-length", "3", "--max-steps", "2", "--eval-every", "1", "--batch-size", "4", *SMALL]
EXTRACT = ["--batch-size", "4", "--block", "4", *SMALL]


@pytest.fixture(scope="module")
def peft_store(tiny_model_dir, data_dir, tmp_path_factory):
    """sst2 tuned, extracted (train baseline, dev values and bits) and ranked in the peft layout on a tiny BERT."""
    path = tmp_path_factory.mktemp("peft") / "s.zarr"
    model = tiny_model_dir("bert")
    for args in (
        ["tune", "--seeds", "0,1", *TUNE],
        ["extract", "--split", "train", *EXTRACT],
        ["extract", "--split", "validation", "--keep", "both", *EXTRACT],
    ):
        result = invoke(
            args[0],
            "--model",
            model,
            "--task",
            "sst2",
            "--store",
            path,
            "--data-dir",
            data_dir,
            "--layout",
            "peft",
            *args[1:],
        )
        assert result.exit_code == 0, result.output
    assert invoke("rank", "--store", path, "--task", "sst2").exit_code == 0
    return path


def test_the_layout_is_recorded_and_shown(peft_store, tiny_model_dir, data_dir, tmp_path):
    store = open_store(peft_store)
    assert store.prompt_spec("sst2").model.layout == "peft"
    ds = store.extraction("sst2", "validation")
    assert ds.attrs["layout"] == "peft" and "first soft prompt token" in ds.attrs["token0"]
    assert store.ranking_spec("sst2").model.layout == "peft"
    pt = tmp_path / "pt.zarr"
    result = invoke(
        "tune",
        "--model",
        tiny_model_dir("bert"),
        "--task",
        "sst2",
        "--store",
        pt,
        "--data-dir",
        data_dir,
        "--seeds",
        "0",
        *TUNE,
    )
    assert result.exit_code == 0, result.output
    info = json.loads(invoke("info", pt, "--json").output)
    assert info["prompts"]["sst2"]["layout"] == "pt"  # the default: the papers' layout
    assert "layout pt" in invoke("info", pt).output


def test_a_store_from_before_layouts_reads_as_peft(peft_store, tmp_path):
    import shutil

    from actstore.store.attrs import put_attrs

    old = tmp_path / "old.zarr"
    shutil.copytree(peft_store, old)
    group = zarr.open_group(old, mode="a")["prompts/sst2"]
    attrs = dict(group.attrs)
    del attrs["spec"]["model"]["layout"]
    put_attrs(group, attrs)  # as a writer from before layouts sealed it
    assert open_store(old).prompt_spec("sst2").model.layout == "peft"


def test_prompts_of_another_layout_are_refused_unless_asked_for(peft_store, tiny_model_dir, data_dir):
    before = digest(peft_store)
    base = ["--model", tiny_model_dir("bert"), "--task", "sst2", "--store", peft_store, "--data-dir", data_dir]
    one_error_line(
        invoke("extract", *base, "--split", "validation", *EXTRACT),
        "prompts of 'sst2' were made in the 'peft' layout, not 'pt'",
        "--cross-layout",
    )
    one_error_line(invoke("eval", *base, *SMALL), "made in the 'peft' layout, not 'pt'")
    one_error_line(
        invoke(
            "suppress",
            "--store",
            peft_store,
            "--task",
            "sst2",
            "--layout",
            "pt",
            "--percent",
            "0,5",
            "--random-draws",
            "2",
            "--data-dir",
            data_dir,
            *SMALL,
        ),
        "made in the 'peft' layout, not 'pt'",
    )
    assert digest(peft_store) == before
    result = invoke("eval", *base, *SMALL, "--cross-layout", "--json")  # asked for: peft's prompts run in pt
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)["accuracy"]) == {"0", "1"}


def test_suppression_runs_in_the_rankings_layout_by_default(peft_store, data_dir):
    result = invoke(
        "suppress",
        "--store",
        peft_store,
        "--task",
        "sst2",
        "--percent",
        "0,10",
        "--random-draws",
        "2",
        "--data-dir",
        data_dir,
        *SMALL,
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert [row["percent"] for row in json.loads(result.output)["rows"]] == [0, 10]


def test_a_baseline_of_another_layout_is_refused_unless_asked_for(peft_store, tiny_model_dir, data_dir, tmp_path):
    """Bits of adv_sst2 compared with sst2's train baseline: the same prompts (as files), but sst2 ran in peft."""
    assert (
        invoke(
            "prompts", "export", "--task", "sst2", "--store", peft_store, "--out", tmp_path, "--format", "pt"
        ).exit_code
        == 0
    )
    files = f"{tmp_path / 'seed0.pt'},{tmp_path / 'seed1.pt'}"
    args = [
        "extract",
        "--model",
        tiny_model_dir("bert"),
        "--task",
        "adv_sst2",
        "--store",
        peft_store,
        "--data-dir",
        data_dir,
        "--prompts",
        files,
        "--seeds",
        "0,1",
        "--keep",
        "bits",
        "--split",
        "validation",
        *EXTRACT,
    ]
    before = digest(peft_store)
    one_error_line(invoke(*args), "train activations of 'sst2' were made in the 'peft' layout, not 'pt'")
    assert digest(peft_store) == before
    result = invoke(*args, "--cross-layout")
    assert result.exit_code == 0, result.output
    assert open_store(peft_store).extraction_spec("adv_sst2", "validation").model.layout == "pt"


def test_label_ids_are_given_recorded_and_checked(tiny_model_dir, data_dir, tmp_path):
    store = tmp_path / "ids.zarr"
    base = [
        "extract",
        "--model",
        tiny_model_dir("bert"),
        "--task",
        "sst2",
        "--store",
        store,
        "--data-dir",
        data_dir,
        "--prompts",
        "random",
        "--seeds",
        "0",
        "--prompt-length",
        "3",
        "--split",
        "validation",
        *EXTRACT,
    ]
    one_error_line(invoke(*base, "--label-ids", "5,x"), "--label-ids takes comma-separated vocabulary ids")
    one_error_line(invoke(*base, "--label-ids", "5,6,7"), "--label-ids gives 3 ids, but the task has 2 classes")
    one_error_line(invoke(*base, "--label-ids", "5,999999"), "outside the vocabulary")
    one_error_line(invoke(*base, "--label-ids", "5,5"), "share a token")
    assert not store.exists()
    result = invoke(*base, "--label-ids", "5,6")
    assert result.exit_code == 0, result.output
    assert open_store(store).extraction_spec("sst2", "validation").label_ids == (5, 6)
    default = tmp_path / "words.zarr"
    assert invoke(*[default if a == store else a for a in base]).exit_code == 0
    assert open_store(default).extraction_spec("sst2", "validation").label_ids not in ((), (5, 6))


def test_bad_layout_input_is_one_line(tiny_model_dir, data_dir, tmp_path):
    store = tmp_path / "x.zarr"
    base = [
        "extract",
        "--model",
        tiny_model_dir("bert"),
        "--task",
        "sst2",
        "--store",
        store,
        "--data-dir",
        data_dir,
        "--prompts",
        "random",
        "--seeds",
        "0",
        "--prompt-length",
        "3",
        "--split",
        "validation",
        *EXTRACT,
    ]
    unknown = invoke(*base, "--layout", "xx")
    assert unknown.exit_code == 2 and "--layout" in unknown.output
    one_error_line(
        invoke(
            *base,
            "--task",
            "mine",
            "--label-words",
            "goodbad,fine",
            "--data-files",
            f"validation={data_dir / 'sst2/dev.tsv'}",
            "--text-field",
            "sentence",
        ),
        "label word 'goodbad' is",
        "tokens in",
        "not one",
    )
    on_t5 = [tiny_model_dir("t5") if a == tiny_model_dir("bert") else a for a in base]
    one_error_line(invoke(*on_t5, "--layout", "sn"), "layout 'sn' is defined for roberta, bert, mpnet models, not t5")
    assert not store.exists()


def test_rank_refuses_a_baseline_of_another_layout_unless_asked_for(peft_store, tiny_model_dir, data_dir, tmp_path):
    """Rotten Tomatoes' dev values in pt, ranked against sst2's train baseline made in peft (same prompts)."""
    assert (
        invoke(
            "prompts", "export", "--task", "sst2", "--store", peft_store, "--out", tmp_path, "--format", "pt"
        ).exit_code
        == 0
    )
    result = invoke(
        "extract",
        "--model",
        tiny_model_dir("bert"),
        "--task",
        "rotten_tomatoes",
        "--store",
        peft_store,
        "--prompts",
        f"{tmp_path / 'seed0.pt'},{tmp_path / 'seed1.pt'}",
        "--seeds",
        "0,1",
        "--split",
        "validation",
        *EXTRACT,
    )
    assert result.exit_code == 0, result.output
    before = digest(peft_store)
    rank = ["rank", "--store", peft_store, "--task", "rotten_tomatoes", "--baseline-from", "sst2"]
    one_error_line(invoke(*rank), "train activations of 'sst2' were made in the 'peft' layout, not 'pt'")
    assert digest(peft_store) == before
    assert invoke(*rank, "--cross-layout").exit_code == 0
    assert open_store(peft_store).ranking_spec("rotten_tomatoes").model.layout == "pt"
