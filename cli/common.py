"""Argument parsing shared by the commands: integer lists, the data options with the task and splits they load, and
the store's location with its storage options."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, get_args

import typer

from actstore import tasks
from actstore.errors import ActstoreError

if TYPE_CHECKING:
    from actstore.store import StoreLocation
else:  # in the commands' signatures only, where with_store replaces it: the store (zarr, dask) loads when a command runs
    StoreLocation = str

DataDir = Annotated[Optional[Path], typer.Option(envvar="ACTSTORE_DATA_DIR", help="local task files (../shared/data layout)")]
DataFiles = Annotated[Optional[str], typer.Option(help="train=a.csv,validation=b.jsonl (CSV/TSV/JSONL)")]
TextField = Annotated[Optional[list[str]], typer.Option(help="text column(s) of --data-files")]
LabelField = Annotated[Optional[str], typer.Option(help="label column of --data-files")]
LabelWords = Annotated[Optional[str], typer.Option(help="label words of a new task, in label order")]
Limit = Annotated[Optional[int], typer.Option(min=1, help="a fixed sample of N examples of each split (seeded, in file order)")]
Device = Annotated[Optional[str], typer.Option(help="cpu, cuda, ... (default: cuda if available)")]
Scheduler = Annotated[Optional[str], typer.Option(
    help="where dask computes: threads, processes (a local cluster of worker processes), tcp://host:8786 or a dask "
         "scheduler file (default: $DASK_SCHEDULER_ADDRESS, else threads)")]


#: sizes and counts: typer refuses 0 and negatives as usage errors (the library checks them again)
BatchSize = Annotated[int, typer.Option(min=1, help="examples per forward pass")]
MaxLength = Annotated[int, typer.Option(min=1, help="text tokens at most")]


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
    files = {}
    for item in text.split(","):
        split, _, path = item.rpartition("=")
        files[split or "train"] = path
    return files


@dataclass(frozen=True)
class DataSource:
    """Where a command's examples come from: the registry's files, or the user's own (--data-files ...)."""

    data_dir: Path | None = None
    data_files: str | None = None
    text_field: list[str] | None = None
    label_field: str | None = None
    label_words: str | None = None
    limit: int | None = None

    def load(self, task: str, splits: str) -> tuple[tasks.TaskSpec, dict[str, tasks.Split]]:
        """A registry task (or the user's own, with --label-words) and its loaded splits, in the order asked."""
        if self.label_words:
            words = self.label_words.split(",")
            spec = tasks.custom_task(task, self.text_field or ["text"], self.label_field or "label",
                                     [str(i) for i in range(len(words))], words)
        else:
            spec = tasks.get_task(task)
        files = parse_data_files(self.data_files)
        loaded = {name: tasks.load_split(spec, name, data_dir=self.data_dir, data_files=files, text_fields=self.text_field,
                                         label_field=self.label_field) for name in tasks.parse_splits(splits)}
        if self.limit is not None:
            loaded = {name: s.sample(self.limit) for name, s in loaded.items()}
        return spec, loaded


_DATA_OPTIONS = {"data_dir": DataDir, "data_files": DataFiles, "text_field": TextField, "label_field": LabelField,
                 "label_words": LabelWords, "limit": Limit}


def with_data(command: Callable) -> Callable:
    """Give a command the data options (--data-dir, --data-files, --text-field, --label-field, --label-words,
    --limit) once, here: it receives them as ``data: DataSource``."""
    signature = inspect.signature(command, eval_str=True)
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
             for name, annotation in _DATA_OPTIONS.items()]

    @functools.wraps(command)
    def run(*args, **kwargs):
        return command(*args, data=DataSource(**{name: kwargs.pop(name) for name in _DATA_OPTIONS}), **kwargs)

    kept = [p for p in signature.parameters.values() if p.name != "data"]
    run.__signature__ = signature.replace(parameters=kept + extra)
    run.__annotations__ = {p.name: p.annotation for p in kept} | _DATA_OPTIONS
    return run


StorageOption = Annotated[Optional[list[str]], typer.Option(
    "--storage-option", metavar="KEY=VALUE",
    help="an option of the store's file system, repeatable: endpoint_url=http://host:9000, anon=true, "
         "config_kwargs.connect_timeout=10 (credentials and endpoints also come from the standard environment: "
         "AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...)")]


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
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ActstoreError(f"--storage-option {key}: {part} is set to a value already")
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
    text = Annotated[Optional[str] if store.default is None else str, *declaration]

    @functools.wraps(command)
    def run(*args, **kwargs):
        url, options = kwargs.pop("store"), parse_storage_options(kwargs.pop("storage_option"))
        if url is None and options:
            raise ActstoreError("--storage-option needs --store")
        from actstore.store import StoreLocation

        return command(*args, store=None if url is None else StoreLocation(url, options), **kwargs)

    kept = [p.replace(annotation=text) if p.name == "store" else p for p in signature.parameters.values()]
    extra = inspect.Parameter("storage_option", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=StorageOption)
    run.__signature__ = signature.replace(parameters=[*kept, extra])
    run.__annotations__ = {p.name: p.annotation for p in kept} | {"storage_option": StorageOption}
    return run
