"""Consoles and the progress bar shared by the commands."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Rates:
    """Examples and bytes done since a start, for the progress bar and the closing line."""

    def __init__(self, on_add: Callable[[int], None] = lambda examples: None) -> None:
        self.start, self.examples, self.bytes, self.on_add = time.perf_counter(), 0, 0, on_add

    def add(self, examples: int, nbytes: int) -> None:
        self.examples += examples
        self.bytes += nbytes
        self.on_add(examples)

    def __str__(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return f"{self.examples / elapsed:.1f} ex/s · {self.bytes / elapsed / 1e6:.1f} MB/s"


@contextmanager
def throughput(description: str, total: int) -> Iterator[Rates]:
    """A progress bar with examples/s and MB/s, cleared when done; yields the ``Rates`` to feed."""
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.completed}/{task.total} ex · {task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(description, total=total, rate="")
        rates = Rates(lambda examples: bar.update(task, advance=examples, rate=str(rates)))
        yield rates


@contextmanager
def steps(description: str, total: int) -> Iterator[Callable[..., None]]:
    """A progress bar of work units with a status line (seed, step, loss); yields ``advance(n, status="")``."""
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[status]}"),
               TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(description, total=total, status="")
        yield lambda n, status="": bar.update(task, advance=n, status=status)
