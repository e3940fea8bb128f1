"""The user's data files are read exactly or refused (issue 19): a row of more or fewer fields than its header is one
error naming the file, the line where the record starts and both counts, never a column shifted into an index; the
texts a store keeps are the file's fields byte for byte. Leaks are refused too: one file for two splits, rows shared
by two splits' files (unless --allow-overlap), the label as a text field, a split named twice, an empty field name.
Each refusal leaves an existing store as it was and creates none."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from actstore import tasks
from actstore.cli.common import DataSource
from actstore.errors import ActstoreError
from actstore.store import Store
from helpers import digest, invoke, one_error_line

TASK = tasks.custom_task("mine", ["text"], "label", ["0", "1"], ["bad", "good"])
#: texts that a careless reader changes: unicode, quotes, newlines, commas and tabs (CSV quotes them all)
TRICKY = [
    "a bad movie, take 0",
    'she said "no", twice',
    '"quoted" from the start',
    "tab\tinside",
    "two\nlines",
    "windows\r\nline end",
    "  spaces kept  ",
    "ünïcödé, 中文, emoji 🎬, e\u0301",
    'comma, "quote"\nand, newline',
    "NA",
    "007",
    "'single'",
]
GOOD = [f"a {w} movie" for w in ["bad", "good", "dull", "great", "boring", "fine", "awful", "funny"]]


def extract_args(store: Path, model: Path, *extra: object) -> list[object]:
    return [
        "extract",
        "--model",
        model,
        "--task",
        "mine",
        "--label-words",
        "bad,good",
        "--store",
        store,
        "--split",
        "validation",
        "--prompts",
        "random",
        "--seeds",
        "0",
        "--prompt-length",
        "2",
        "--batch-size",
        "4",
        "--block",
        "8",
        *extra,
    ]


@pytest.fixture(scope="module")
def world(tiny_model_dir, tmp_path_factory) -> dict:
    """A store that holds an extraction of good rows, which every refused command must leave as it was."""
    folder = tmp_path_factory.mktemp("data-files")
    good = folder / "good.jsonl"
    good.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n" for i, t in enumerate(GOOD)))
    store = folder / "s.zarr"
    made = invoke(*extract_args(store, tiny_model_dir("roberta"), "--data-files", f"validation={good}"))
    assert made.exit_code == 0, made.output
    return {"store": store, "model": tiny_model_dir("roberta"), "folder": folder}


def refused(world: dict, tmp_path: Path, extra: list[object], *fragments: str) -> None:
    """The command is one error line holding every fragment, against the store (unchanged) and a new path (none)."""
    before = digest(world["store"])
    one_error_line(invoke(*extract_args(world["store"], world["model"], *extra)), *fragments)
    assert digest(world["store"]) == before
    new = tmp_path / "new.zarr"
    one_error_line(invoke(*extract_args(new, world["model"], *extra)), *fragments)
    assert not new.exists()


def write_rows(path: Path, rows: list[str], header: str) -> Path:
    path.write_text(header + "\n" + "".join(row + "\n" for row in rows))
    return path


# ---- ragged rows: refused at their line, with both counts


@pytest.mark.parametrize(
    "fmt, sep, why",
    [
        ("csv", ",", "a comma inside a text must be inside quotes"),
        ("tsv", "\t", "a tab inside a text? TSV has no quoting"),
    ],
)
def test_a_text_holding_the_separator_unquoted_is_refused_not_shifted(world, tmp_path, fmt, sep, why):
    """The issue's case: every text holds the separator, so every row has one field more than the header; pandas
    read the extra leading field as an index and stored ' take 0' for 'a bad movie, take 0'."""
    path = write_rows(
        tmp_path / f"d.{fmt}", [f"a bad movie{sep} take {i}{sep}{i % 2}" for i in range(6)], f"text{sep}label"
    )
    refused(
        world,
        tmp_path,
        ["--data-files", f"validation={path}"],
        f"error: {path} line 2: 3 fields, but the header (line 1) has 2 ({why}",
    )


@pytest.mark.parametrize("fmt, sep", [("csv", ","), ("tsv", "\t")])
def test_a_row_with_a_field_missing_is_refused(world, tmp_path, fmt, sep):
    path = write_rows(
        tmp_path / f"d.{fmt}", [f"a good movie{sep}1", f"a bad movie{sep}0", "a dull movie"], f"text{sep}label"
    )
    refused(
        world,
        tmp_path,
        ["--data-files", f"validation={path}"],
        f"error: {path} line 4: 1 field, but the header (line 1) has 2",
    )


def test_the_line_named_is_where_the_record_starts_after_embedded_newlines(tmp_path):
    """Row 1's quoted text spans lines 2-4, a blank line and a good row follow: the ragged row is the third record
    but starts on physical line 7."""
    path = write_rows(
        tmp_path / "d.csv", ['"one\r\ntwo\nthree",1', "", "fine,0", "a bad movie, take 0,1"], "text,label"
    )
    raw = path.read_bytes()
    assert raw[: raw.index(b"a bad movie")].count(b"\n") + 1 == 7
    with pytest.raises(ActstoreError) as caught:
        tasks.load_split(TASK, "validation", data_files={"validation": path})
    assert str(caught.value) == (
        f"{path} line 7: 3 fields, but the header (line 1) has 2 (a comma inside a text must be inside quotes)"
    )


@pytest.mark.parametrize(
    "row, message",
    [
        ('"a bad" movie,0', "line 4: ',' expected after '\"'"),  # non-strict, the csv module drops the quotes
        ('"never closed,0\nfine,1', "line 4: unexpected end of data"),  # non-strict, the rest of the file is one text
    ],
)
def test_a_stray_or_unclosed_quote_is_refused_at_its_line(tmp_path, row, message):
    path = write_rows(tmp_path / "d.csv", ['"a\nb",1', row], "text,label")
    with pytest.raises(ActstoreError, match="^" + re.escape(f"cannot parse {path} {message}") + "$"):
        tasks.load_split(TASK, "validation", data_files={"validation": path})


@pytest.mark.parametrize(
    "line, fragment",
    [
        ('{"text": "a bad movie"}', "line 3: no field(s) ['label']; its fields: ['text']"),
        (
            '{"text": "a bad movie", "label": 0, "text": "a good movie"}',
            "line 3: an object names the field(s) ['text'] twice",
        ),
    ],
)
def test_a_json_line_missing_a_field_or_naming_one_twice_is_refused(world, tmp_path, line, fragment):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": "a good movie", "label": 1}) + "\n\n" + line + "\n")
    refused(world, tmp_path, ["--data-files", f"validation={path}"], f"error: {path} {fragment}")


# ---- what is read is what the file holds


def tricky_files(folder: Path) -> dict[str, tuple[Path, list[str]]]:
    """The TRICKY texts in every format that can hold them (TSV: those without a tab or a line break)."""
    labels = [i % 2 for i in range(len(TRICKY))]
    with open(folder / "t.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text", "label"], *zip(TRICKY, labels)])
    plain = [t for t in TRICKY if not set(t) & set("\t\r\n")]
    (folder / "t.tsv").write_text(
        "text\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(plain)), encoding="utf-8"
    )
    (folder / "t.jsonl").write_text(
        "".join(
            json.dumps({"text": t, "label": y, "id": i}, ensure_ascii=i % 2 == 0) + "\n"
            for i, (t, y) in enumerate(zip(TRICKY, labels))
        ),
        encoding="utf-8",
    )
    (folder / "t.json").write_text(
        json.dumps([{"text": t, "label": y} for t, y in zip(TRICKY, labels)]), encoding="utf-8"
    )
    pd.DataFrame({"text": TRICKY, "label": labels}).to_parquet(folder / "t.parquet")
    return {
        fmt: (folder / f"t.{fmt}", plain if fmt == "tsv" else TRICKY)
        for fmt in ("csv", "tsv", "jsonl", "json", "parquet")
    }


def test_every_format_reads_its_fields_byte_for_byte(tmp_path):
    for fmt, (path, texts) in tricky_files(tmp_path).items():
        split = tasks.load_split(TASK, "validation", data_files={"validation": path})
        assert [t.encode() for (t,) in split.texts] == [t.encode() for t in texts], fmt
        assert split.labels.tolist() == [i % 2 for i in range(len(texts))], fmt


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_the_store_keeps_the_files_texts_byte_for_byte(tiny_model_dir, tmp_path, fmt):
    path, texts = tricky_files(tmp_path)[fmt]
    store = tmp_path / "s.zarr"
    result = invoke(*extract_args(store, tiny_model_dir("bert"), "--data-files", f"validation={path}"))
    assert result.exit_code == 0, result.output
    stored = Store(store).extraction(task="mine", split="validation")
    assert [t.encode() for t in stored["text"].values[:, 0]] == [t.encode() for t in texts]
    assert stored["example"].values.tolist() == list(range(len(texts)))


# ---- leaks: refused in one line, with the override named where one makes sense


def jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n" for i, t in enumerate(texts)))
    return path


@pytest.mark.parametrize("spelling", ["{f}", "{f.parent}/../{f.parent.name}/{f.name}", "link"])
def test_one_file_for_train_and_validation_is_refused(world, tmp_path, spelling):
    train = jsonl(tmp_path / "train.jsonl", GOOD)
    (tmp_path / "link").symlink_to(train)
    same = spelling.format(f=train) if spelling != "link" else tmp_path / "link"
    refused(
        world,
        tmp_path,
        ["--split", "train,validation", "--data-files", f"train={train},validation={same}"],
        f"error: {same} is given as both train and validation: validation would measure what train has seen; "
        "give each split its own file, or train alone",
    )


@pytest.mark.parametrize("split", ["validation", "train,validation"])
def test_rows_shared_by_train_and_validation_are_refused_unless_allowed(world, tmp_path, split):
    """Two of validation's six rows are train rows, the first on line 3: in another format they are the same rows
    (texts and class). Refused even where only validation is extracted: its baseline comes from that train."""
    train = jsonl(tmp_path / "train.jsonl", GOOD)
    dev = tmp_path / "dev.csv"
    dev.write_text(
        "text,label\nthe poor film,0\na good movie,1\nthe nice film,1\nthe slow film,0\n"
        "a great movie,1\nthe grand film,1\n"
    )
    files = f"train={train},validation={dev}"
    refused(
        world,
        tmp_path,
        ["--split", split, "--data-files", files],
        f"error: 2 of the 6 rows of validation are rows of train ({train}) too, the first at {dev} line 3: "
        "validation would measure what train has seen; remove them, or give --allow-overlap to keep them",
    )
    allowed = invoke(
        *extract_args(
            tmp_path / "allowed.zarr", world["model"], "--split", split, "--data-files", files, "--allow-overlap"
        )
    )
    assert allowed.exit_code == 0, allowed.output


def test_a_text_shared_under_another_label_is_no_overlap(tmp_path):
    """A row is its texts and its class: the same sentence labelled otherwise is another row (noise, not a copy)."""
    train, dev = jsonl(tmp_path / "train.jsonl", GOOD), tmp_path / "dev.jsonl"
    dev.write_text(json.dumps({"text": GOOD[1], "label": 0}) + "\n" + json.dumps({"text": "new", "label": 1}) + "\n")
    loaded = tasks.load_splits(TASK, "train,validation", data_files={"train": train, "validation": dev})
    assert [len(s) for s in loaded.values()] == [8, 2]


def test_test_rows_in_validation_are_refused_as_well(tmp_path):
    train, dev, test = (jsonl(tmp_path / f"{n}.jsonl", [f"{n} {i}" for i in range(4)]) for n in ("tr", "dev", "te"))
    jsonl(test, ["te 0", "te 1", "dev 2", "te 3"])
    with pytest.raises(
        ActstoreError,
        match=re.escape(f"1 of the 4 rows of test are rows of validation ({dev}) too, the first at {test} line 3"),
    ):
        tasks.load_splits(TASK, "test", data_files={"train": train, "validation": dev, "test": test})


def test_the_label_field_as_a_text_field_is_refused(world, tmp_path):
    path = jsonl(tmp_path / "d.jsonl", GOOD)
    for extra in (["--text-field", "label"], ["--text-field", "text,label"], ["--label-field", "text"]):
        refused(
            world,
            tmp_path,
            ["--data-files", f"validation={path}", *extra],
            "error: the label field ",
            "is also one of its text fields",
            "would read each example's label",
        )


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--split", "train,train"], "error: the split(s) ['train'] are named twice in 'train,train'"),
        (["--split", "validation,dev"], "error: the split(s) ['validation'] are named twice in 'validation,dev'"),
        (["--data-files", "{good},{good}"], "error: --data-files names the split 'train' twice (a bare path is train)"),
        (["--data-files", "dev={good},validation={good}"], "error: the data files name the split 'validation' twice"),
        (["--text-field", ""], "error: --text-field takes column names (a,b or the option repeated), got ''"),
        (["--text-field", "text,"], "error: --text-field takes column names (a,b or the option repeated), got 'text,'"),
        (["--label-field", ""], "error: --label-field takes a column name, got ''"),
    ],
)
def test_a_split_or_field_named_twice_or_empty_is_refused(world, tmp_path, extra, fragment):
    good = jsonl(tmp_path / "good.jsonl", GOOD)
    refused(world, tmp_path, ["--data-files", f"validation={good}", *[a.format(good=good) for a in extra]], fragment)


@pytest.mark.parametrize("task", ["sst2", "mrpc", "qnli"])
def test_the_registry_benchmarks_load_as_published(data_dir, task):
    """Measured: SST-2, MRPC and QNLI (re-split) share no row between train and validation; the registry's files
    are used as published in any case (IMDB's and tweets3's own duplicate rows land on both sides of the dev rule)."""
    _, loaded = DataSource(data_dir=data_dir).load(task, "train,validation")
    train = set(zip(loaded["train"].texts, loaded["train"].labels.tolist()))
    assert not [row for row in zip(loaded["validation"].texts, loaded["validation"].labels.tolist()) if row in train]


def test_sst2s_own_files_as_data_files_pass_the_overlap_check(data_dir):
    files = {"train": data_dir / "sst2" / "train.tsv", "validation": data_dir / "sst2" / "dev.tsv"}
    spec = tasks.custom_task("toy", ["sentence"], "label", ["0", "1"], ["negative", "positive"])
    assert [len(s) for s in tasks.load_splits(spec, "train,validation", data_files=files).values()] == [67349, 872]
