"""The order tasks appear in on every figure and table, and the file names the report writes them under."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..tasks import _registry, source_task


def _position(name: str) -> tuple:
    """Sort key of ``task_order``: adversarial after clean; then the registry's order of the clean task (the papers'
    grouping: sentiment, paraphrase, NLI, ethics; a user's own tasks after those), then the name."""
    registry = list(_registry())
    base = name.split(":")[0]  # a multi-class sub-task's ranking: <task>:<subtask>
    clean = source_task(base)
    return clean != base, registry.index(clean) if clean in registry else len(registry), clean, name


def task_order(names: Iterable[str]) -> list[str]:
    """Tasks as every figure and table shows them: the clean tasks first, then the adversarial ones in the order of
    their clean tasks, so that the pairs line up between the two blocks."""
    return sorted(dict.fromkeys(names), key=_position)


def _stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
