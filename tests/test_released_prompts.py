"""The seed paper's 80 released prompts (``../shared/data/released-prompts``, listed in MANIFEST.md): every file read
and checked against the manifest, imported as a Robust-Neurons tree (``actstore prompts import --from
robust-neurons``), exported back tensor for tensor, run in the ``pt`` layout they were tuned in; and every bad tree
refused in one line, leaving the store as it was (or uncreated)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from actstore import open_store, tasks
from actstore.errors import ActstoreError
from actstore.models import load_model
from actstore.prompts import RN_TASKS, PromptSet, export_prompts
from actstore.specs import PromptSpec, from_attrs, to_attrs
from helpers import digest, invoke, one_error_line

RELEASED = "released-prompts"
#: the release's seed folders as actstore seeds, in import order
SEEDS = {"su": 0, "33": 33, "34": 34, "35": 35, "36": 36}
MODELS = {"roberta": "Roberta", "t5": "T5"}


@pytest.fixture(scope="module")
def released(data_dir) -> Path:
    root = data_dir / RELEASED
    if not root.is_dir():
        pytest.skip(f"{root} is absent: the released prompts are not in this copy of ../shared/data")
    return root


def manifest_table(data_dir: Path) -> dict[str, tuple[int, str]]:
    """MANIFEST.md's table of the released prompts: path under released-prompts/ → (bytes, sha256's first 16 hex)."""
    text = (data_dir / "MANIFEST.md").read_text()
    section = text[text.index("## The papers' released prompts") :]
    section = section.split("\n## ", 1)[0]  # up to the next section, if any
    rows = re.findall(rf"^\| `{RELEASED}/([^`]+)` \| ([\d,]+) \| `([0-9a-f]{{16}})` \|$", section, re.M)
    return {path: (int(size.replace(",", "")), sha) for path, size, sha in rows}


@pytest.fixture(scope="module")
def wide_roberta(tmp_path_factory) -> Path:
    """A tiny RoBERTa with the released prompts' width: hidden 768, 1 layer, FFN 64, a BPE tokenizer of
    tiny_models' corpus."""
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizerFast

    from tiny_models import CORPUS

    path = tmp_path_factory.mktemp("roberta768")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS,
        vocab_size=1000,
        min_frequency=1,
        show_progress=False,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    bpe.save(str(path / "tokenizer.json"))
    tokenizer = RobertaTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = RobertaConfig(
            vocab_size=len(tokenizer),
            hidden_size=768,
            num_hidden_layers=1,
            num_attention_heads=12,
            intermediate_size=64,
            max_position_embeddings=302,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
        )
        model = RobertaForMaskedLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def imported(released, wide_roberta, tmp_path_factory) -> Path:
    """A store holding the released SST-2 RoBERTa prompts, imported through the command line."""
    store = tmp_path_factory.mktemp("released") / "paper.zarr"
    result = invoke(
        "prompts",
        "import",
        "--from",
        "robust-neurons",
        released,
        "--task",
        "sst2",
        "--model",
        wide_roberta,
        "--store",
        store,
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["seeds"] == list(SEEDS.values()) and payload["seed_names"] == list(SEEDS)
    assert payload["n_tokens"] == 100 and payload["layout"] == "pt"
    assert payload["source"] == f"robust-neurons:{released}"
    return store


# ---- the files as released


def test_the_manifest_lists_all_80_released_prompts_and_every_file_matches_its_size_and_sha256(data_dir, released):
    table = manifest_table(data_dir)
    on_disk = {p.relative_to(released).as_posix() for p in released.rglob("task_prompt")}
    assert len(table) == 80 and set(table) == on_disk
    for path, (size, sha) in table.items():
        data = (released / path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()[:16]) == (size, sha), path


def test_every_released_prompt_reads_as_a_100_by_768_float32_tensor(released):
    files = sorted(released.rglob("task_prompt"))
    assert len(files) == 80
    for path in files:
        tensor = torch.load(path, map_location="cpu", weights_only=True)
        assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32, path
        assert tuple(tensor.shape) == (100, 768) and bool(torch.isfinite(tensor).all()), path


@pytest.mark.parametrize("architecture", MODELS)
def test_every_task_reads_as_five_seeds_su_first_with_each_files_sha256(released, data_dir, architecture):
    """All 8 tasks × 5 seeds of a model through actstore's reader: su is seed 0, the others their number, and the
    recorded sha256 of each file agrees with MANIFEST.md."""
    table = manifest_table(data_dir)
    for task, name in RN_TASKS.items():
        prompts = PromptSet.from_robust_neurons(released, task, architecture, 768)
        assert prompts.seeds == tuple(SEEDS.values()) and prompts.seed_names == tuple(SEEDS)
        assert prompts.vectors.shape == (5, 100, 768) and prompts.vectors.dtype == np.float32
        assert prompts.source == f"robust-neurons:{released}"
        for seed, vectors, entry in zip(SEEDS, prompts.vectors, prompts.files):
            path, sha = entry.split(" sha256:")
            assert path == f"seed_{seed}/{name}Prompt{MODELS[architecture]}/task_prompt"
            assert sha[:16] == table[path][1] and len(sha) == 64
            original = torch.load(released / path, map_location="cpu", weights_only=True)
            assert np.array_equal(vectors, original.numpy())
    assert set(RN_TASKS) <= set(tasks.task_names())


def test_every_released_prompt_exports_back_as_the_same_tensor(released, tmp_path):
    """All 80 (8 tasks × 2 models × 5 seeds): read, written as a Robust-Neurons tree, read back with their
    ``torch.load(path)``: equal tensors under the same relative paths."""
    out = tmp_path / "out"
    written = []
    for architecture in MODELS:
        for task in RN_TASKS:
            prompts = PromptSet.from_robust_neurons(released, task, architecture, 768)
            written += export_prompts(prompts, out, "robust-neurons", "unused", task=task, architecture=architecture)
    expected = sorted(p.relative_to(released) for p in released.rglob("task_prompt"))
    assert sorted(p.relative_to(out) for p in written) == expected
    for path in written:
        original = torch.load(released / path.relative_to(out), map_location="cpu", weights_only=True)
        assert torch.equal(torch.load(path), original), path


# ---- import and export through the command line


def test_import_records_seed_names_files_and_the_pt_layout_and_export_gives_back_the_originals(
    imported, released, tmp_path
):
    spec = open_store(imported).prompt_spec("sst2")
    assert spec.model.layout == "pt" and spec.model.architecture == "roberta" and spec.model.hidden == 768
    assert spec.seeds == (0, 33, 34, 35, 36) and spec.seed_names == ("su", "33", "34", "35", "36")
    assert spec.source == f"robust-neurons:{released}"
    for seed, entry in zip(SEEDS, spec.files):
        path, sha = entry.split(" sha256:")
        assert path == f"seed_{seed}/SST2PromptRoberta/task_prompt"
        assert sha == hashlib.sha256((released / path).read_bytes()).hexdigest()
    assert PromptSet.stored(open_store(imported), "sst2").seed_names == spec.seed_names

    out = tmp_path / "exported"
    result = invoke(
        "prompts", "export", "--store", imported, "--task", "sst2", "--format", "robust-neurons", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert "wrote 5 robust-neurons prompt(s) of sst2" in result.output
    assert "seed_su/SST2PromptRoberta/task_prompt" in result.output
    exported = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert exported == sorted(f"seed_{s}/SST2PromptRoberta/task_prompt" for s in SEEDS)
    for path in exported:
        original = torch.load(released / path, map_location="cpu", weights_only=True)
        assert torch.equal(torch.load(out / path), original), path

    # imported once more from the export: the same prompts, so the store takes them without a change
    before = digest(imported)
    again = invoke(
        "prompts",
        "import",
        "--from",
        "robust-neurons",
        out,
        "--task",
        "sst2",
        "--model",
        spec.model.name,
        "--store",
        imported,
    )
    assert again.exit_code == 0, again.output
    assert digest(imported) == before


def test_a_released_roberta_prompt_gives_finite_logits_in_the_pt_layout(imported, wide_roberta):
    model = load_model(str(wide_roberta), device="cpu", layout="pt")
    model.check_made_for("prompts of 'sst2'", open_store(imported).prompt_spec("sst2").model)
    prompts = PromptSet.stored(open_store(imported), "sst2")
    prompts.check_fits(model.spec, 16)
    sst2 = tasks.get_task("sst2")
    batch = model.encode([("a charming and moving film",), ("a dull , boring mess",)], 16, "sst2")
    logits = [
        model.label_logits(batch, torch.from_numpy(vectors), model.label_ids(sst2)) for vectors in prompts.vectors
    ]
    assert all(tuple(x.shape) == (2, 2) and bool(torch.isfinite(x).all()) for x in logits)
    assert not torch.equal(logits[0], logits[1])  # seed su and seed 33 are different prompts


def test_export_names_integer_seeds_without_recorded_names_and_refuses_what_the_format_cannot_hold(tmp_path):
    prompts = PromptSet.random([3, 7], 100, 8)
    written = export_prompts(prompts, tmp_path / "a", "robust-neurons", "unused", task="qqp", architecture="t5")
    assert [p.relative_to(tmp_path / "a").as_posix() for p in written] == [
        "seed_3/QQPPromptT5/task_prompt",
        "seed_7/QQPPromptT5/task_prompt",
    ]
    assert torch.equal(torch.load(written[1]), torch.from_numpy(prompts.vectors[1]))
    refused = [
        (PromptSet.random([0], 4, 8), "sst2", "roberta", "100-token prompts"),
        (prompts, "tweets3", "roberta", "no prompts for task 'tweets3'"),
        (prompts, "sst2", "mpnet", "not a mpnet"),
    ]
    for bad, task, architecture, message in refused:
        with pytest.raises(ActstoreError, match=re.escape(message)):
            export_prompts(bad, tmp_path / "b", "robust-neurons", "unused", task=task, architecture=architecture)
    assert not (tmp_path / "b").exists()


def test_a_prompt_spec_of_a_store_from_before_seed_names_still_loads(imported):
    attrs = to_attrs(open_store(imported).prompt_spec("sst2"))
    old = {k: v for k, v in attrs.items() if k not in ("seed_names", "files")}
    spec = from_attrs(PromptSpec, old)
    assert spec.seed_names == () and spec.files == () and spec.seeds == (0, 33, 34, 35, 36)
    assert PromptSet(np.zeros((1, 2, 3), np.float32), (5,), "x").names == ("5",)


# ---- bad input: one line, exit code 1, the store as it was and no store created


def copy_tree(released: Path, to: Path, folder: str = "SST2PromptRoberta") -> Path:
    """The release's seed folders with only ``folder`` in each."""
    for seed in SEEDS:
        target = to / f"seed_{seed}" / folder
        target.mkdir(parents=True)
        shutil.copyfile(released / f"seed_{seed}" / folder / "task_prompt", target / "task_prompt")
    return to


def missing(root: Path) -> None:
    (root / "seed_35/SST2PromptRoberta/task_prompt").unlink()


def truncated(root: Path) -> None:
    path = root / "seed_34/SST2PromptRoberta/task_prompt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def short(root: Path) -> None:
    torch.save(torch.zeros(50, 768), root / "seed_36/SST2PromptRoberta/task_prompt")


def three_d(root: Path) -> None:
    torch.save(torch.zeros(1, 100, 768), root / "seed_33/SST2PromptRoberta/task_prompt")


BROKEN = {
    "missing task_prompt": (missing, "missing prompt file", "seed_35/SST2PromptRoberta/task_prompt"),
    "truncated task_prompt": (truncated, "cannot read prompt file", "seed_34/SST2PromptRoberta/task_prompt"),
    "wrong shape": (short, "seed_36/SST2PromptRoberta/task_prompt", "is (100, 768), got shape (50, 768)"),
    "three axes": (three_d, "seed_33/SST2PromptRoberta/task_prompt", "got shape (1, 100, 768)"),
}


def refused(args: list, store: Path, fresh: Path, *fragments: str) -> None:
    """The import refused into an existing store (unchanged) and into a new one (never created)."""
    before = digest(store)
    one_error_line(invoke("prompts", "import", *args, "--store", store), *fragments)
    assert digest(store) == before
    one_error_line(invoke("prompts", "import", *args, "--store", fresh), *fragments)
    assert not fresh.exists() and not fresh.with_name(fresh.name + ".lock").exists()


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_tree_is_one_line_naming_the_file(case, imported, released, wide_roberta, tmp_path):
    damage, *fragments = BROKEN[case]
    root = copy_tree(released, tmp_path / "tree")
    damage(root)
    refused(
        ["--from", "robust-neurons", root, "--task", "sst2", "--model", wide_roberta],
        imported,
        tmp_path / "new.zarr",
        *fragments,
    )


def test_bad_tasks_folders_models_and_options_are_one_line(
    imported, released, wide_roberta, tiny_model_dir, tmp_path, data_dir
):
    only_sst2 = copy_tree(released, tmp_path / "only_sst2")
    t5_only = copy_tree(released, tmp_path / "t5_only", "SST2PromptT5")
    (tmp_path / "empty").mkdir()
    cases = [
        ([released, "--task", "nope", "--model", wide_roberta], ["unknown task 'nope'"]),
        (
            [released, "--task", "rotten_tomatoes", "--model", wide_roberta],
            ["no prompts for task 'rotten_tomatoes'", "sst2"],
        ),
        ([released, "--task", "adv_sst2", "--model", wide_roberta], ["runs the prompts of 'sst2'", "--task sst2"]),
        ([only_sst2, "--task", "imdb", "--model", wide_roberta], ["holds no prompts for task 'imdb'", "IMDBPrompt"]),
        ([t5_only, "--task", "sst2", "--model", wide_roberta], ["no SST2PromptRoberta folder", "found SST2PromptT5"]),
        ([tmp_path / "empty", "--task", "sst2", "--model", wide_roberta], ["is not a Robust-Neurons prompt tree"]),
        ([data_dir / "sst2", "--task", "sst2", "--model", wide_roberta], ["is not a Robust-Neurons prompt tree"]),
        ([tmp_path / "nowhere", "--task", "sst2", "--model", wide_roberta], ["no such directory"]),
        (
            [released, "--task", "sst2", "--model", tiny_model_dir("roberta")],
            ["hidden size 768 does not match", "hidden size 32", "seed_su/SST2PromptRoberta/task_prompt"],
        ),
        ([released, "--task", "sst2", "--model", tiny_model_dir("mpnet")], ["not a mpnet"]),
        ([released, "--task", "sst2", "--model", wide_roberta, "--layout", "peft"], ["tuned in the 'pt' layout"]),
        ([released, "--task", "sst2", "--model", wide_roberta, "--seeds", "1,2,3,4,5"], ["leave out --seeds"]),
        ([released, released, "--task", "sst2", "--model", wide_roberta], ["takes one folder"]),
    ]
    for args, fragments in cases:
        refused(["--from", "robust-neurons", *args], imported, tmp_path / "new.zarr", *fragments)
    odd = copy_tree(released, tmp_path / "odd")
    (odd / "seed_x").mkdir()
    refused(
        ["--from", "robust-neurons", odd, "--task", "sst2", "--model", wide_roberta],
        imported,
        tmp_path / "new.zarr",
        "seed folder 'seed_x'",
    )
    shutil.copytree(odd / "seed_su", odd / "seed_0")
    shutil.rmtree(odd / "seed_x")
    refused(
        ["--from", "robust-neurons", odd, "--task", "sst2", "--model", wide_roberta],
        imported,
        tmp_path / "new.zarr",
        "seed_su and seed_0",
        "both seed 0",
    )
