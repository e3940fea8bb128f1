"""Argument parsing shared by the commands: integer lists, data files, and a task with its splits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from actstore import tasks
from actstore.errors import ActstoreError

DataDir = Annotated[Optional[Path], typer.Option(envvar="ACTSTORE_DATA_DIR", help="local task files (../shared/data layout)")]
DataFiles = Annotated[Optional[str], typer.Option(help="train=a.csv,validation=b.jsonl (CSV/TSV/JSONL)")]
TextField = Annotated[Optional[list[str]], typer.Option(help="text column(s) of --data-files")]
LabelField = Annotated[Optional[str], typer.Option(help="label column of --data-files")]
LabelWords = Annotated[Optional[str], typer.Option(help="label words of a new task, in label order")]
Limit = Annotated[Optional[int], typer.Option(help="a fixed sample of N examples of each split (seeded, in file order)")]
Device = Annotated[Optional[str], typer.Option(help="cpu, cuda, ... (default: cuda if available)")]


def parse_ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ActstoreError(f"expected comma-separated integers, got '{text}'") from None


def parse_data_files(text: str | None) -> dict[str, str] | None:
    """``train=a.csv,validation=b.csv`` (a bare path means the train split)."""
    if not text:
        return None
    files = {}
    for item in text.split(","):
        split, _, path = item.rpartition("=")
        files[split or "train"] = path
    return files


def task_and_splits(task: str, splits: str, *, data_dir: Path | None = None, data_files: str | None = None,
                    text_field: list[str] | None = None, label_field: str | None = None,
                    label_words: str | None = None, limit: int | None = None) -> tuple[tasks.TaskSpec, dict[str, tasks.Split]]:
    """A registry task (or the user's own, with --label-words) and its loaded splits, in the order asked."""
    if label_words:
        words = label_words.split(",")
        spec = tasks.custom_task(task, text_field or ["text"], label_field or "label", [str(i) for i in range(len(words))], words)
    else:
        spec = tasks.get_task(task)
    files = parse_data_files(data_files)
    loaded = {name: tasks.load_split(spec, name, data_dir=data_dir, data_files=files, text_fields=text_field,
                                     label_field=label_field) for name in tasks.parse_splits(splits)}
    if limit:
        loaded = {name: s.sample(limit) for name, s in loaded.items()}
    return spec, loaded
