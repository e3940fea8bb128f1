"""Consoles and the progress bar shared by the commands."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def throughput(description: str, total: int) -> Iterator["callable"]:
    """A progress bar showing examples/s and MB/s; yields ``advance(examples, nbytes)``."""
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.completed}/{task.total} ex · {task.fields[rate]}"), TimeRemainingColumn())
    start = time.perf_counter()
    state = {"examples": 0, "bytes": 0}
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(description, total=total, rate="")

        def advance(examples: int, nbytes: int) -> None:
            state["examples"] += examples
            state["bytes"] += nbytes
            elapsed = max(time.perf_counter() - start, 1e-9)
            rate = f"{state['examples'] / elapsed:.1f} ex/s · {state['bytes'] / elapsed / 1e6:.1f} MB/s"
            bar.update(task, advance=examples, rate=rate)

        yield advance
