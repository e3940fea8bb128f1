"""The task registry of ``data/tasks.json``: each task's fields, classes, label words and where its data lives, and the
tasks of the user's own files."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from ..errors import ActstoreError


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


@cache
def _registry() -> dict:
    return json.loads(resources.files("actstore.data").joinpath("tasks.json").read_text())


def task_names() -> list[str]:
    return sorted(k for k in _registry() if not k.startswith("_") and k != "dev_from_train")


def get_task(name: str) -> TaskSpec:
    entry = _registry().get(name)
    if entry is None or name not in task_names():
        raise ActstoreError(
            f"unknown task '{name}'; known tasks: {', '.join(task_names())} "
            "(or give your own files with --data-files and --label-words)"
        )
    hub_id, hub_config = entry["hub"]
    return TaskSpec(
        name=name,
        text_fields=tuple(entry["text_fields"]),
        label_field=entry["label_field"],
        label_names=tuple(entry["label_names"]),
        label_words=tuple(entry["label_words"]),
        clean_source=entry.get("clean_source"),
        hub_id=hub_id,
        hub_config=hub_config,
        hub_splits=entry["hub_splits"],
        hub_revision=entry.get("hub_revision"),
        local=entry["local"],
        dev_from_train=entry.get("dev_from_train", False),
    )


def source_task(task: str | TaskSpec) -> str:
    """Whose prompts and train baseline a task uses (METHOD.md): an adversarial task's clean source, any other
    task its own (a user's own task, unknown to the registry, included)."""
    if isinstance(task, str):
        try:
            spec = get_task(task)
        except ActstoreError:
            return task
    else:
        spec = task
    return spec.clean_source or spec.name


def custom_task(
    name: str, text_fields: Sequence[str], label_field: str, label_names: Sequence[str], label_words: Sequence[str]
) -> TaskSpec:
    """A task of the user's own files."""
    if len(label_names) != len(label_words) or len(label_words) < 2:
        raise ActstoreError(
            f"task '{name}' needs one label word per class (at least 2), got {list(label_words)}"
            + (f" for the classes {list(label_names)}" if len(label_names) != len(label_words) else "")
        )
    _check_fields(name, text_fields, label_field)
    return TaskSpec(
        name=name,
        text_fields=tuple(text_fields),
        label_field=label_field,
        label_names=tuple(label_names),
        label_words=tuple(label_words),
    )


def _check_fields(task: str, text_fields: Sequence[str], label_field: str) -> None:
    """Text fields and a label field that is none of them: the model must not read the label in its input."""
    if not text_fields or not all(text_fields) or not label_field:
        raise ActstoreError(
            f"task '{task}' needs text field(s) and a label field, got {list(text_fields)} and {label_field!r}"
        )
    if label_field in text_fields:
        raise ActstoreError(
            f"the label field '{label_field}' of task '{task}' is also one of its text fields "
            f"({', '.join(text_fields)}): the model would read each example's label in its input; "
            "give --text-field the text column(s) and --label-field the label column"
        )
