"""Loaders that turn a task's source into a ``Split``: the user's files, the local data folder, a PyPI package, the hub
(the package docstring gives the order and the rules)."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any, Literal, TextIO, get_args

import numpy as np

from ..digest import file_sha256
from ..errors import ActstoreError
from .registry import TaskSpec, _check_fields, _registry, custom_task, get_task

SPLITS = ("train", "validation", "test")
ALIASES = {"dev": "validation", "val": "validation"}
#: formats of the user's files (``data_format``, else the file's extension)
DataFormatName = Literal["csv", "tsv", "json", "jsonl", "parquet"]
DATA_FORMATS: tuple[DataFormatName, ...] = get_args(DataFormatName)
#: the hub's parquet export of a repo, the revision ``datasets`` reads script-based repos from
PARQUET_EXPORT = "refs/convert/parquet"


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
            raise ValueError(
                f"split '{self.name}': {len(self.texts)} texts, {len(self.labels)} labels, {len(self.rows)} rows"
            )

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def fingerprint(self) -> str:
        """Identifies the exact examples, so a store refuses to resume on other data."""
        h = hashlib.sha256()
        for text, label in zip(self.texts, self.labels.tolist()):
            h.update(json.dumps([text, label]).encode())
        return "sha256:" + h.hexdigest()[:32]

    def sample(self, n: int) -> Split:
        """A deterministic sample of ``n`` examples in file order (files sorted by label make the first n useless)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ActstoreError(f"limit must be a positive number of examples, got {n!r}")
        if n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(0).permutation(len(self))[:n])
        return replace(self.subset(keep, self.name), source=f"{self.source} (sample of {n})")

    def subset(self, indices: np.ndarray, name: str) -> Split:
        """The examples at ``indices`` (positions in this split), with their row ids."""
        return replace(
            self,
            name=name,
            texts=tuple(self.texts[i] for i in indices),
            labels=self.labels[indices],
            rows=self.rows[indices],
        )


def user_task(
    name: str,
    label_words: Sequence[str],
    *,
    data_files: Mapping[str, str | Path] | None = None,
    text_fields: Sequence[str] = ("text",),
    label_field: str = "label",
    label_names: Sequence[str] | None = None,
    data_format: str | None = None,
) -> TaskSpec:
    """A task of the user's own files whose classes are ``label_names`` in that order, else taken from the files'
    label column: integer labels are the class ids 0..k-1; text labels (no integer among them) are their sorted
    distinct values, so the same files always number their classes the same way."""
    _check_fields(name, text_fields, label_field)
    if label_names is None:
        values = (
            record.get(label_field)
            for path in (data_files or {}).values()
            for _, record in _user_records(Path(path), data_format_of(Path(path), data_format))
        )
        label_names = _label_names(values, len(label_words))
        if len(label_names) != len(label_words):
            raise ActstoreError(
                f"the label column '{label_field}' of {', '.join(map(str, (data_files or {}).values()))} holds "
                f"{len(label_names)} distinct labels ({', '.join(label_names[:10])}"
                f"{', ...' * (len(label_names) > 10)}) but {len(label_words)} label words were given "
                f"({', '.join(label_words)})"
            )
    return custom_task(name, text_fields, label_field, label_names, label_words)


def _label_names(values: Iterable[object], n_classes: int) -> tuple[str, ...]:
    """Class names of label values (see ``user_task``), kept distinct as they stream by; nulls are left to the
    loader, which names their row."""
    names = set()
    for value in values:
        if _is_integer(value):
            return tuple(str(i) for i in range(n_classes))
        if value is not None:
            names.add(str(value).strip())
    return tuple(sorted(names)) if names else tuple(str(i) for i in range(n_classes))


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
        raise ActstoreError(
            f"labels {bad} of {split.source} are outside the {len(task.label_names)} classes of '{task.name}'"
        )
    if len(present) < min_classes:
        raise ActstoreError(
            f"split '{split.name}' of task '{task.name}' ({split.source}) holds only examples of class "
            f"'{task.label_names[present[0]]}' ({len(split)}): ranking and tuning need at least two "
            "classes"
        )


def parse_splits(text: str) -> list[str]:
    names = [ALIASES.get(s.strip(), s.strip()) for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SPLITS]
    if bad or not names:
        raise ActstoreError(f"unknown split(s) {bad or text!r}; use {', '.join(SPLITS)} (dev = validation)")
    twice = sorted({s for s in names if names.count(s) > 1}, key=SPLITS.index)
    if twice:
        raise ActstoreError(f"the split(s) {twice} are named twice in '{text}' (dev = validation): name each once")
    return names


def data_format_of(path: Path, data_format: str | None = None) -> str:
    """``data_format``, else the format the file's extension names."""
    fmt = data_format or path.suffix.lower().lstrip(".")
    if fmt not in DATA_FORMATS:
        raise ActstoreError(
            f"unknown data format '{data_format}'; use {', '.join(DATA_FORMATS)}"
            if data_format
            else f"cannot tell the format of {path} from its extension: give --data-format ({', '.join(DATA_FORMATS)})"
        )
    return fmt


def default_data_dir() -> Path | None:
    """``../shared/data`` beside the project checkout (the folder above the ``actstore`` package), where it exists: the
    folder ``make`` exports as ``$ACTSTORE_DATA_DIR``, so that a command typed outside ``make``, from any directory,
    finds the same files. None for an installed package, which has no such neighbour."""
    found = Path(__file__).resolve().parents[3] / "shared" / "data"  # actstore/tasks/loaders.py
    return found.resolve() if found.is_dir() else None  # a linked shared folder, named as where it is


def load_split(
    task: str | TaskSpec,
    split: str,
    *,
    data_dir: str | Path | None = None,
    data_files: Mapping[str, str | Path] | None = None,
    text_fields: Sequence[str] | None = None,
    label_field: str | None = None,
    data_format: str | None = None,
) -> Split:
    """Load one split of a task from the first source that has it (see the module docstring)."""
    spec = get_task(task) if isinstance(task, str) else task
    split = parse_splits(split)[0]
    overrides = _overrides(text_fields, label_field)
    if data_files is not None:
        files = _user_files(data_files, data_format)
        derive = "validation" not in files and split in ("train", "validation")
        return _from_sources(spec, split, files, None, overrides, derive=derive)
    root = data_dir or os.environ.get("ACTSTORE_DATA_DIR") or default_data_dir()
    available = {s: e for s, e in spec.local.items() if "package" in e or (root and (Path(root) / e["file"]).is_file())}
    if split in available or (spec.dev_from_train and "train" in available):
        return _from_sources(spec, split, available, root, {}, derive=spec.dev_from_train)
    return _from_hub(spec, split, root)


def load_splits(
    task: str | TaskSpec,
    splits: str,
    *,
    data_dir: str | Path | None = None,
    data_files: Mapping[str, str | Path] | None = None,
    text_fields: Sequence[str] | None = None,
    label_field: str | None = None,
    data_format: str | None = None,
    allow_overlap: bool = False,
) -> dict[str, Split]:
    """The splits ``splits`` names (``train,validation``: each once), in that order, as ``load_split`` loads them;
    the user's files first checked not to share rows (``_check_disjoint``), unless ``allow_overlap``. The registry's
    files are the benchmarks as published, used as they are (their own duplicates included)."""
    spec = get_task(task) if isinstance(task, str) else task
    names = parse_splits(splits)
    if data_files is not None and not allow_overlap:
        _check_disjoint(spec, _user_files(data_files, data_format), _overrides(text_fields, label_field))
    return {
        name: load_split(
            spec,
            name,
            data_dir=data_dir,
            data_files=data_files,
            text_fields=text_fields,
            label_field=label_field,
            data_format=data_format,
        )
        for name in names
    }


def _overrides(text_fields: Sequence[str] | None, label_field: str | None) -> dict:
    """The user's field names for their files, None where not given (then the task's own)."""
    return {"text_fields": list(text_fields) if text_fields else None, "label_field": label_field}


def _user_files(data_files: Mapping[str, str | Path], data_format: str | None) -> dict[str, dict]:
    """The user's files by split, with their formats: each split once, each file for one split only (a file given
    as train and validation would put the dev examples in the train baseline and the tuning)."""
    files: dict[str, dict] = {}
    owner: dict[Path, str] = {}
    for key, path in data_files.items():
        split = parse_splits(key)[0]
        if split in files:
            raise ActstoreError(
                f"the data files name the split '{split}' twice ({', '.join(data_files)}; dev = validation)"
            )
        first = owner.setdefault(Path(path).resolve(), split)
        if first != split:
            raise ActstoreError(
                f"{path} is given as both {first} and {split}: {split} would measure what {first} has "
                "seen; give each split its own file, or train alone (validation is then taken from "
                "it)"
            )
        files[split] = {"file": str(path), "format": data_format_of(Path(path), data_format)}
    return files


def _check_disjoint(spec: TaskSpec, files: Mapping[str, Mapping], overrides: Mapping) -> None:
    """No row of a user's file (its texts and class) is a row of an earlier split's file, found by a 64-bit hash per
    row: O(n) memory, and a chance of a false match below 1e-8 for a million rows against 100,000."""
    hashes = {split: _row_hashes(spec, entry, overrides) for split, entry in files.items()}
    order = sorted(files, key=SPLITS.index)
    for i, later in enumerate(order):
        for earlier in order[:i]:
            shared = np.isin(hashes[later], hashes[earlier])
            if shared.any():
                first = int(np.argmax(shared))
                where = next(islice(_user_records(Path(files[later]["file"]), files[later]["format"]), first, None))[0]
                raise ActstoreError(
                    f"{int(shared.sum())} of the {len(shared)} rows of {later} are rows of {earlier} "
                    f"({files[earlier]['file']}) too, the first at {where}: {later} would measure what "
                    f"{earlier} has seen; remove them, or give --allow-overlap to keep them"
                )


def _row_hashes(spec: TaskSpec, entry: Mapping, overrides: Mapping) -> np.ndarray:
    """A 64-bit hash of each row's texts and class id, in file order (a row is the same in CSV and in JSON Lines)."""
    fields = _fields(spec, entry, overrides)
    examples = (
        _example(spec, record, *fields, where) for where, record in _user_records(Path(entry["file"]), entry["format"])
    )
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(json.dumps(example).encode(), digest_size=8).digest(), "little")
            for example in examples
        ),
        dtype=np.uint64,
    )


def _from_sources(
    spec: TaskSpec,
    split: str,
    sources: Mapping[str, Mapping],
    root: str | Path | None,
    overrides: Mapping,
    derive: bool,
) -> Split:
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
        raise ActstoreError(
            f"split 'validation' of task '{train.task}' is empty: it is taken from train "
            f"({rule['fraction']:.0%} of {n} examples, {train.source}), which is too small; "
            "give a validation file (--data-files train=a.csv,validation=b.csv)"
        )
    dev = np.sort(order[:n_dev])
    if split == "validation":
        return train.subset(dev, "validation")
    if split == "train":
        return train.subset(np.setdiff1d(np.arange(n), dev), "train")
    raise ActstoreError(f"task '{train.task}' has no '{split}' split")


def _fields(spec: TaskSpec, entry: Mapping, overrides: Mapping) -> tuple[Sequence[str], str]:
    """The text fields and the label field a source is read by: the user's, else its registry entry's, else the
    task's."""
    text_fields = overrides.get("text_fields") or entry.get("text_fields") or spec.text_fields
    label_field = overrides.get("label_field") or entry.get("label_field") or spec.label_field
    _check_fields(spec.name, text_fields, label_field)
    return text_fields, label_field


def _read_source(spec: TaskSpec, split: str, entry: Mapping, root: str | Path | None, overrides: Mapping) -> Split:
    text_fields, label_field = _fields(spec, entry, overrides)
    if "format" in entry:
        return _read_user_file(spec, split, Path(entry["file"]), entry["format"], text_fields, label_field)
    if "package" in entry:  # located without importing it: a data package's own code may not import today
        found = importlib.util.find_spec(entry["package"])
        if found is None or not found.submodule_search_locations:
            raise ActstoreError(
                f"task '{spec.name}' reads the PyPI package '{entry['package']}': "
                f"pip install {entry['package'].replace('_', '-')}"
            )
        path = Path(found.submodule_search_locations[0]) / entry["file"]
    else:
        path = Path(entry["file"]) if root is None else Path(root) / entry["file"]
    if not path.is_file():
        raise ActstoreError(f"data file not found: {path}")
    if "sha256" in entry and _sha256(path) != entry["sha256"]:
        raise ActstoreError(
            f"{path} does not match the sha256 in the task registry: the file was changed or is another version"
        )
    where = entry.get("where", {})
    records = _records(path, data_format_of(path), entry.get("encoding_errors", "strict"))
    selected = (
        (row, at, record)
        for row, (at, record) in enumerate(records)
        if all(record.get(k) == v for k, v in where.items())
    )
    texts, labels, rows = _examples(spec, selected, text_fields, label_field)
    if not texts:
        raise ActstoreError(f"split '{split}' of task '{spec.name}' is empty ({path})")
    return Split(spec.name, split, texts, labels, str(path), rows)


def _read_user_file(
    spec: TaskSpec, split: str, path: Path, fmt: str, text_fields: Sequence[str], label_field: str
) -> Split:
    """A split of the user's file, its rows checked as they stream by (the file is never held twice)."""
    records = _user_records(path, fmt)
    texts, labels, rows = _examples(
        spec, ((row, at, record) for row, (at, record) in enumerate(records)), text_fields, label_field
    )
    if not texts:
        raise ActstoreError(f"split '{split}' of task '{spec.name}' is empty ({path})")
    return Split(spec.name, split, texts, labels, f"{path} ({fmt})", rows)


def _user_records(path: Path, fmt: str) -> Iterator[tuple[str, dict]]:
    """The records of a user's file (``_records``), which must exist."""
    if not path.is_file():
        raise ActstoreError(f"data file not found: {path}")
    return _records(path, fmt)


#: the csv module's reading of the delimited formats, strict: a CSV field's quotes are RFC 4180's (a stray quote is
#: an error rather than dropped, an unclosed one an error rather than the rest of the file as one text); TSV has no
#: quoting, as GLUE ships it (a quote is text, and a tab cannot be)
_DIALECTS: dict[str, dict[str, Any]] = {
    "csv": {"delimiter": ",", "strict": True},
    "tsv": {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "strict": True},
}
#: why a delimited row may hold more fields than its header
_EXTRA_FIELD = {
    "csv": "a comma inside a text must be inside quotes",
    "tsv": "a tab inside a text? TSV has no quoting: write CSV or JSON Lines",
}


def _records(path: Path, fmt: str, errors: str = "strict") -> Iterator[tuple[str, dict]]:
    """Each record of a file in file order, with where it starts (``<path> line n``; a JSON array's ``<path> item
    i``, Parquet's ``<path> row i``), read exactly: every field as the file holds it, or an error naming where the
    record starts. ``errors="replace"`` for registry files the registry knows hold some bytes that are not UTF-8."""
    return _parquet_records(path) if fmt == "parquet" else _text_records(path, fmt, errors)


def _text_records(path: Path, fmt: str, errors: str) -> Iterator[tuple[str, dict]]:
    try:
        with open(path, encoding="utf-8-sig", errors=errors, newline="") as f:
            if fmt in _DIALECTS:
                yield from _delimited(f, path, fmt)
            elif fmt == "json" and f.read(1 << 16).lstrip().startswith("["):
                f.seek(0)
                yield from _json_array(f, path)
            else:  # JSON Lines, however the file is named
                f.seek(0)
                yield from (
                    (f"{path} line {n}", _json_object(line, path, n)) for n, line in enumerate(f, 1) if line.strip()
                )
    except UnicodeDecodeError as exc:
        raise ActstoreError(f"cannot parse {path}: {exc}") from None
    except OSError as exc:
        raise ActstoreError(f"cannot read {path}: {exc.strerror or exc}") from None


def _delimited(f: Iterable[str], path: Path, fmt: str) -> Iterator[tuple[str, dict]]:
    """The rows of a CSV or TSV file under its header, by name (blank lines skipped). A row of more or fewer fields
    than the header is an error at the line where it starts: pandas took a row's extra leading field as an index
    and stored every text shifted by one column."""
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(f, **_DIALECTS[fmt])
    names: list[str] | None = None
    start = header_line = 1  # the physical line where the next record starts (a quoted field may hold newlines)
    try:
        for row in reader:
            if not row:
                pass
            elif names is None:
                # a blank name reads as pandas names it
                names, header_line = [name or f"Unnamed: {i}" for i, name in enumerate(row)], start
                repeated = sorted({name for name in names if names.count(name) > 1})
                if repeated:
                    raise ActstoreError(f"{path} line {start}: the header repeats the column(s) {repeated}")
            elif len(row) != len(names):
                why = f" ({_EXTRA_FIELD[fmt]})" if len(row) > len(names) else ""
                raise ActstoreError(
                    f"{path} line {start}: {len(row)} field{'s' * (len(row) != 1)}, but the header "
                    f"(line {header_line}) has {len(names)}{why}"
                )
            else:
                yield f"{path} line {start}", dict(zip(names, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ActstoreError(f"cannot parse {path} line {start}: {exc}") from None


def _json_array(f: TextIO, path: Path) -> Iterator[tuple[str, dict]]:
    """The items of a JSON array file, each one JSON object (``datasets`` read an array of strings as a column)."""
    try:
        items = json.load(f, object_pairs_hook=_json_fields)
    except (json.JSONDecodeError, _RepeatedFields) as exc:
        raise ActstoreError(f"cannot parse {path}: {exc}") from None
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ActstoreError(
                f"{path} item {i}: a record must be a JSON object, got {type(item).__name__} {json.dumps(item)[:40]}"
            )
        yield f"{path} item {i}", item


def _json_object(line: str, path: Path, n: int) -> dict:
    try:
        record = json.loads(line, object_pairs_hook=_json_fields)
    except json.JSONDecodeError as exc:
        raise ActstoreError(f"cannot parse {path} line {n}: {exc.msg} (column {exc.colno})") from None
    except _RepeatedFields as exc:
        raise ActstoreError(f"{path} line {n}: {exc}") from None
    if not isinstance(record, dict):
        raise ActstoreError(
            f"{path} line {n}: a record must be a JSON object, got {type(record).__name__} {line.strip()[:40]}"
        )
    return record


class _RepeatedFields(ValueError):
    """A JSON object that names a field twice: ``json`` would keep the last value and drop the others unseen."""


def _json_fields(pairs: list[tuple[str, object]]) -> dict:
    record = dict(pairs)
    if len(record) < len(pairs):
        names = [name for name, _ in pairs]
        raise _RepeatedFields(f"an object names the field(s) {sorted({n for n in names if names.count(n) > 1})} twice")
    return record


def _parquet_records(path: Path) -> Iterator[tuple[str, dict]]:
    """The rows of a Parquet file, a row group at a time."""
    import pyarrow
    import pyarrow.parquet

    try:
        row = 0
        for batch in pyarrow.parquet.ParquetFile(path).iter_batches():
            for record in batch.to_pylist():
                yield f"{path} row {row}", record
                row += 1
    except (OSError, pyarrow.ArrowException) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ActstoreError(f"cannot read {path} as parquet: {first_line}") from None


def _examples(
    spec: TaskSpec, records: Iterable[tuple[int, str, Mapping]], text_fields: Sequence[str], label_field: str
) -> tuple[tuple[tuple[str, ...], ...], np.ndarray, np.ndarray]:
    """Texts, label ids and row ids of (row id, where, record) triples, each record checked (``_example``)."""
    texts, labels, rows = [], [], []
    for row, where, record in records:
        text, label = _example(spec, record, text_fields, label_field, where)
        texts.append(text)
        labels.append(label)
        rows.append(row)
    return tuple(texts), np.array(labels, dtype=np.int64), np.array(rows, dtype=np.int64)


def _example(
    spec: TaskSpec, record: Mapping, text_fields: Sequence[str], label_field: str, where: str
) -> tuple[tuple[str, ...], int]:
    """A record's texts and class id: a missing or null field, a text that is not a string or a label that is not a
    class is an error naming ``where`` (else it would be stored: a null text as "None")."""
    missing = [f for f in (*text_fields, label_field) if f not in record]
    if missing:
        raise ActstoreError(f"{where}: no field(s) {missing}; its fields: {sorted(str(k) for k in record if k)}")
    for f in (*text_fields, label_field):
        if record[f] is None:
            raise ActstoreError(f"{where}: field '{f}' is null")
    bad = [f for f in text_fields if not isinstance(record[f], str)]
    if bad:
        value = record[bad[0]]
        raise ActstoreError(f"{where}: text field '{bad[0]}' holds {type(value).__name__} {value!r}, not a string")
    return tuple(record[f] for f in text_fields), _label_id(spec, record[label_field], where)


def _rows(path: Path, errors: str = "strict") -> list[dict]:
    """The records of a file, without where they start."""
    return [record for _, record in _records(path, data_format_of(path), errors)]


def _label_id(spec: TaskSpec, value: object, where: str) -> int:
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
    raise ActstoreError(
        f"label {value!r} in {where} is not one of the {len(spec.label_names)} classes of "
        f"'{spec.name}' ({', '.join(spec.label_names)} or 0..{len(spec.label_names) - 1})"
    )


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
    where = (
        f"under {root}" if root else "(no --data-dir / ACTSTORE_DATA_DIR given, no ../shared/data beside the checkout)"
    )
    if spec.hub_id is None:
        raise ActstoreError(f"no data for task '{spec.name}' split '{split}': give --data-files")
    derive = spec.dev_from_train or split not in spec.hub_splits
    hub_split = spec.hub_splits.get("train" if derive else split)
    if hub_split is None:
        raise ActstoreError(f"task '{spec.name}' has no '{split}' split")
    try:
        rows = _hub_dataset(spec, hub_split)
    except Exception as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ActstoreError(
            f"task '{spec.name}' split '{split}' was not found locally {where}, and the hub could not "
            f"provide {spec.hub_id}: {first_line}"
        ) from None
    source = f"hub:{spec.hub_id}/{spec.hub_config or ''}" + (f"@{spec.hub_revision}" if spec.hub_revision else "")
    texts, labels, ids = _examples(
        spec,
        ((row, f"{source} {hub_split} row {row}", record) for row, record in enumerate(rows)),
        spec.text_fields,
        spec.label_field,
    )
    loaded = Split(spec.name, "train" if derive else split, texts, labels, source, ids)
    if not len(loaded):
        raise ActstoreError(f"split '{split}' of task '{spec.name}' is empty")
    return _derived(loaded, split) if derive else loaded
