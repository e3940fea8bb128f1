"""Argument parsing shared by the commands: integer lists, the data options with the task and splits they load, and
the store's location with its storage options."""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TypedDict, get_args

import typer

from actstore import tasks
from actstore.errors import ActstoreError

if TYPE_CHECKING:
    from actstore.launch import Shard
    from actstore.store import StoreLocation
else:
    # in the commands' signatures only, where with_store replaces it: the store (zarr, dask) loads when a command runs
    StoreLocation = str

DataDir = Annotated[
    Path | None,
    typer.Option(
        envvar="ACTSTORE_DATA_DIR",
        help="local task files (../shared/data layout; default: "
        "../shared/data beside the actstore checkout, where it exists)",
    ),
]
DataFiles = Annotated[
    str | None,
    typer.Option(
        help="your own files, train=a.csv,validation=b.jsonl (a bare path is train); without validation, 10 % of train "
        "(seeded, at most 2000) becomes validation and leaves train"
    ),
]
DataFormat = Annotated[
    tasks.DataFormatName | None,
    typer.Option(help=f"format of --data-files: {', '.join(tasks.DATA_FORMATS)} (default: each file's extension)"),
]
TextField = Annotated[
    list[str] | None, typer.Option(help="text column(s) of --data-files: a,b or the option repeated (default: text)")
]
LabelField = Annotated[str | None, typer.Option(help="label column of --data-files (default: label)")]
LabelWords = Annotated[str | None, typer.Option(help="label words of a new task, one per class, in class order")]
LabelIds = Annotated[
    str | None,
    typer.Option(help="vocabulary ids to score, one per class in class order (instead of looking up the label words)"),
]
AllowOverlap = Annotated[
    bool,
    typer.Option("--allow-overlap", help="keep rows that --data-files give for two splits (refused otherwise: a leak)"),
]
LabelNames = Annotated[
    str | None,
    typer.Option(
        help="the labels of --data-files as written there, in class order (default: integer labels are class ids, "
        "text labels are sorted)"
    ),
]
Limit = Annotated[
    int | None, typer.Option(min=1, help="a fixed sample of N examples of each split (seeded, in file order)")
]
Device = Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: cuda if available)")]
#: actstore.models.MODEL_DTYPES and DEVICE_MAPS, spelled out so that --help does not import torch
#: (tests/test_conventions.py: equal); the default dtype is the library's (models.model_dtype)
ModelDtypeName = Literal["float32", "bfloat16", "float16"]
ModelDtype = Annotated[
    ModelDtypeName | None,
    typer.Option(
        help="what the model's weights compute in (default: float32 on a CPU, bfloat16 on CUDA where the GPU has it); "
        "what is stored keeps its own dtype"
    ),
]
DeviceMap = Annotated[
    Literal["auto"] | None,
    typer.Option(
        help="auto: accelerate spreads a model too large for one GPU over every GPU of the machine (needs CUDA and "
        "accelerate, pip install 'actstore[multi-gpu]'; not with --device)"
    ),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        help="where dask computes: threads, processes (a local cluster of worker processes), tcp://host:8786 or a dask "
        "scheduler file (default: $DASK_SCHEDULER_ADDRESS, else threads)"
    ),
]


#: sizes and counts: typer refuses 0 and negatives as usage errors (the library checks them again)
#: actstore.layouts.LAYOUTS, spelled out so that --help does not import torch (tests/test_conventions.py: equal)
LayoutName = Literal["pt", "sn", "peft", "causal", "prefix"]
Layout = Annotated[
    LayoutName,
    typer.Option(
        help="how the input is built around the prompt: pt (Prompt-Transferability / Robust-Neurons, the seed paper's; "
        "token 0 is the <mask> slot where the label is read), sn (Skill-Neuron), peft (PEFT's: a <mask> in the text); "
        "decoder-only LLMs: causal (<bos> text, then the prompt; the label is the next token), prefix (prompt "
        "first, for comparison only: its activations do not depend on the text)"
    ),
]
CrossLayout = Annotated[
    bool,
    typer.Option(
        "--cross-layout", help="allow prompts, baselines and rankings made in another layout (refused otherwise)"
    ),
]
BatchSize = Annotated[int, typer.Option(min=1, help="examples per forward pass")]
MaxLength = Annotated[int, typer.Option(min=1, help="text tokens at most")]


class Placement(TypedDict):
    """``load_model``'s placement keywords."""

    device: str | None
    dtype: str | None
    device_map: str | None


def placement(
    device: str | None, model_dtype: str | None, device_map: str | None, shard: Shard | None = None
) -> Placement:
    """``load_model``'s device, dtype and device_map from the options (the library picks the defaults and checks
    them); under a launcher each rank gets its GPU, unless --device-map places the model itself (then one rank per
    machine)."""
    if shard is not None and device_map is None:
        device = shard.device(device)
    return {"device": device, "dtype": model_dtype, "device_map": device_map}


def parse_seeds(text: str) -> list[int]:
    """``0,1,2``; the library checks the values (at least one, non-negative, distinct)."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ActstoreError(f"--seeds takes comma-separated integers, got '{text}'") from None


def parse_data_files(text: str | None) -> dict[str, str] | None:
    """``train=a.csv,validation=b.csv`` (a bare path means the train split)."""
    if not text:
        return None
    files: dict[str, str] = {}
    for item in text.split(","):
        split, _, path = item.rpartition("=")
        split = split or "train"
        if split in files:  # a dict would keep the last file silently
            raise ActstoreError(f"--data-files names the split '{split}' twice (a bare path is train)")
        files[split] = path
    return files


@dataclass(frozen=True)
class DataSource:
    """Where a command's examples come from: the registry's files, or the user's own (--data-files ...)."""

    data_dir: Path | None = None
    data_files: str | None = None
    data_format: str | None = None
    text_field: list[str] | None = None
    label_field: str | None = None
    label_words: str | None = None
    label_names: str | None = None
    limit: int | None = None
    label_ids: str | None = None
    allow_overlap: bool = False

    def load(self, task: str, splits: str) -> tuple[tasks.TaskSpec, dict[str, tasks.Split]]:
        """A registry task (or the user's own, with --label-words) and its loaded splits, in the order asked."""
        files = parse_data_files(self.data_files)
        text_fields = parse_text_fields(self.text_field)
        if self.data_format and files is None:
            raise ActstoreError("--data-format needs --data-files")
        if self.label_field is not None and not self.label_field.strip():
            raise ActstoreError(f"--label-field takes a column name, got {self.label_field!r}")
        if self.label_names and not self.label_words:
            raise ActstoreError("--label-names needs --label-words (a registry task names its own labels)")
        if self.label_words:
            names = [n.strip() for n in self.label_names.split(",")] if self.label_names else None
            spec = tasks.user_task(
                task,
                self.label_words.split(","),
                data_files=files,
                text_fields=text_fields or ["text"],
                label_field=self.label_field or "label",
                label_names=names,
                data_format=self.data_format,
            )
        else:
            spec = tasks.get_task(task)
        if self.label_ids:
            spec = replace(spec, label_ids=parse_label_ids(self.label_ids, len(spec.label_names)))
        loaded = tasks.load_splits(
            spec,
            splits,
            data_dir=self.data_dir,
            data_files=files,
            text_fields=text_fields,
            label_field=self.label_field,
            data_format=self.data_format,
            allow_overlap=self.allow_overlap,
        )
        if self.limit is not None:
            loaded = {name: s.sample(self.limit) for name, s in loaded.items()}
        numbered = spec.label_names == tuple(map(str, range(len(spec.label_names))))
        if self.label_words and not self.label_names and not numbered:
            classes = ", ".join(f"{n}={i} ({w})" for i, (n, w) in enumerate(zip(spec.label_names, spec.label_words)))
            logging.getLogger("actstore.cli").warning(
                "task '%s' numbers its text labels in sorted order: %s (--label-names sets another order)",
                task,
                classes,
            )
        return spec, loaded


def parse_label_ids(text: str, n_classes: int) -> tuple[int, ...]:
    """``--label-ids 33407,22173``: one non-negative integer per class."""
    items = [item.strip() for item in text.split(",")]
    if not all(item.isdigit() for item in items):
        raise ActstoreError(f"--label-ids takes comma-separated vocabulary ids (non-negative integers), got '{text}'")
    if len(items) != n_classes:
        raise ActstoreError(f"--label-ids gives {len(items)} ids, but the task has {n_classes} classes")
    return tuple(int(item) for item in items)


def parse_text_fields(items: list[str] | None) -> list[str] | None:
    """``--text-field a,b`` and ``--text-field a --text-field b`` alike; an empty name is refused rather than taken
    for the default column."""
    names = [name.strip() for item in items or [] for name in item.split(",")]
    if "" in names:
        raise ActstoreError(
            f"--text-field takes column names (a,b or the option repeated), got {','.join(items or [])!r}"
        )
    return names or None


_DATA_OPTIONS = {
    "data_dir": DataDir,
    "data_files": DataFiles,
    "data_format": DataFormat,
    "text_field": TextField,
    "label_field": LabelField,
    "label_words": LabelWords,
    "label_names": LabelNames,
    "limit": Limit,
    "label_ids": LabelIds,
    "allow_overlap": AllowOverlap,
}


def with_data(command: Callable) -> Callable:
    """Give a command the data options (--data-dir, --data-files, --data-format, --text-field, --label-field,
    --label-words, --label-names, --label-ids, --limit, --allow-overlap) once, here: it receives them as
    ``data: DataSource``, whose defaults they have."""
    signature = inspect.signature(command, eval_str=True)
    defaults = {f.name: f.default for f in fields(DataSource)}
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=defaults[name], annotation=annotation)
        for name, annotation in _DATA_OPTIONS.items()
    ]

    @functools.wraps(command)
    def run(*args, **kwargs):
        return command(*args, data=DataSource(**{name: kwargs.pop(name) for name in _DATA_OPTIONS}), **kwargs)

    kept = [p for p in signature.parameters.values() if p.name != "data"]
    # typer reads inspect.signature, which honours __signature__ (an attribute typeshed does not declare)
    run.__signature__ = signature.replace(parameters=kept + extra)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in kept} | _DATA_OPTIONS
    return run


StorageOption = Annotated[
    list[str] | None,
    typer.Option(
        "--storage-option",
        metavar="KEY=VALUE",
        help="an option of the store's file system, repeatable: endpoint_url=http://host:9000, anon=true, "
        "config_kwargs.connect_timeout=10 (credentials and endpoints also come from the standard environment: "
        "AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...)",
    ),
]


def parse_storage_options(items: list[str] | None) -> dict[str, object]:
    """``key=value`` pairs; a value is JSON where it parses (``true``, ``5``), else text; ``a.b=v`` nests."""
    options: dict[str, object] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ActstoreError(f"--storage-option takes key=value, got '{item}'")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.strip().split(".")
        target = options
        for part in parents:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise ActstoreError(f"--storage-option {key}: {part} is set to a value already")
            target = nested
        target[leaf] = value
    return options


def with_store(command: Callable) -> Callable:
    """Give a command whose ``store`` parameter takes a path or URL the repeatable ``--storage-option`` once, here:
    it receives both as ``store: StoreLocation`` (None where an optional store was not given)."""
    signature = inspect.signature(command, eval_str=True)
    if "store" not in signature.parameters:
        return command
    store = signature.parameters["store"]
    _, *declaration = get_args(store.annotation)  # Annotated[StoreLocation, typer.Option(help=...)]
    text: object = Annotated[str | None if store.default is None else str, *declaration]

    @functools.wraps(command)
    def run(*args, **kwargs):
        url, options = kwargs.pop("store"), parse_storage_options(kwargs.pop("storage_option"))
        if url is None and options:
            raise ActstoreError("--storage-option needs --store")
        from actstore.store import StoreLocation

        return command(*args, store=None if url is None else StoreLocation(url, options), **kwargs)

    kept = [p.replace(annotation=text) if p.name == "store" else p for p in signature.parameters.values()]
    extra = inspect.Parameter("storage_option", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=StorageOption)
    run.__signature__ = signature.replace(parameters=[*kept, extra])  # type: ignore[attr-defined]  # see with_data
    run.__annotations__ = {p.name: p.annotation for p in kept} | {"storage_option": StorageOption}
    return run
