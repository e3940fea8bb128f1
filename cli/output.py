"""Consoles and the progress bar shared by the commands."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

#: what -q turned off: the progress bars (its errors still show)
_quiet = False


class _ErrHandler(logging.Handler):
    """Log records as ``level: message`` lines on the error console (the one sys.stderr of the moment); asyncio's
    own (an object-store client's session unclosed at exit) are not the command's: one error line stays one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != "asyncio" and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"{record.levelname.lower()}: {escape(self.format(record))}", highlight=False, soft_wrap=True)


def configure_logging(verbose: int, quiet: bool) -> None:
    """-q: errors only (no warnings, no progress bars); default: warnings; -v: info; -vv: debug. Python's
    warnings go through ``logging`` too, so -q silences them."""
    global _quiet
    _quiet = quiet
    level = logging.ERROR if quiet else max(logging.DEBUG, logging.WARNING - 10 * verbose)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ErrHandler)]:  # once per invocation (tests invoke often)
        root.removeHandler(handler)
    root.addHandler(_ErrHandler(level))  # its own level too: libraries that set their loggers' (distributed: INFO)
    root.setLevel(level)  # still propagate their records to the root's handlers
    logging.captureWarnings(True)


def print_json(payload: object) -> None:
    """A command's result (or ``{"error": ...}``) as one JSON document on stdout."""
    out.print_json(json.dumps(payload))


def closing_rate(rates: Rates, was_complete: bool) -> str:
    """The closing line's throughput, or "already complete" where nothing was left to do (a rate of skipped work
    would be meaningless)."""
    return "already complete" if was_complete else str(rates)


class Rates:
    """Examples and bytes done since a start, for the progress bar and the closing line."""

    def __init__(self, on_add: Callable[[int], None] = lambda examples: None) -> None:
        self.start, self.examples, self.bytes, self.on_add = time.perf_counter(), 0, 0, on_add

    def add(self, examples: int, nbytes: int) -> None:
        self.examples += examples
        self.bytes += nbytes
        self.on_add(examples)

    @property
    def examples_per_s(self) -> float:
        return self.examples / max(time.perf_counter() - self.start, 1e-9)

    def __str__(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return f"{self.examples / elapsed:.1f} ex/s · {self.bytes / elapsed / 1e6:.1f} MB/s"


#: what the skill table's numbers are, under it: a neuron's predictivity and the token printed with it come from
#: different reductions over the seeds (the report's neuron pages draw both)
SKILL_TABLE_NOTE = (
    "predictivity: Eq. 5, the mean over seeds of each seed's highest max(Acc, 1 − Acc) over the "
    "prompt tokens; best token: the prompt token that is best for the most seeds (a seed's own best "
    "token may differ)"
)


def skill_table(title: str, rows: list[dict]) -> Table:
    """Top skill neurons (``ranking.top_neurons`` rows); a stack column appears when T5's decoder is among them."""
    stacks = any(row["stack"] != "encoder" for row in rows)
    table = Table(title=title, caption=SKILL_TABLE_NOTE)
    for column in ("rank", *(("stack",) if stacks else ()), "layer", "neuron", "predictivity", "best token"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["rank"]),
            *((row["stack"],) if stacks else ()),
            str(row["layer"]),
            str(row["neuron"]),
            f"{row['predictivity']:.4f}",
            str(row["best_token"]),
        )
    return table


@contextmanager
def throughput(description: str, total: int) -> Iterator[Rates]:
    """A progress bar with examples/s and MB/s, cleared when done; yields the ``Rates`` to feed."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed}/{task.total} ex · {task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=_quiet) as bar:
        task = bar.add_task(description, total=total, rate="")
        rates = Rates(lambda examples: bar.update(task, advance=examples, rate=str(rates)))
        yield rates


@contextmanager
def steps(description: str, total: int, lines: bool = False) -> Iterator[Callable[..., None]]:
    """A progress bar of work units with a status line (seed, step, loss); yields ``advance(n, status="",
    milestone=False)``. Where stderr is no terminal (a log file, a CI job) a redrawn bar prints nothing; with
    ``lines`` it is plain lines there instead (``plain_steps``)."""
    if lines and not _quiet and not err.is_terminal:
        with plain_steps(description, total, err.print) as advance:
            yield advance
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=_quiet) as bar:
        task = bar.add_task(description, total=total, status="")
        yield lambda n, status="", milestone=False: bar.update(task, advance=n, status=status)


#: plain progress lines: one each time the work passes another tenth of its total
PLAIN_PARTS = 10


@contextmanager
def plain_steps(description: str, total: int, say: Callable[..., None]) -> Iterator[Callable[..., None]]:
    """Progress as lines: one as the work starts, one each time it passes another tenth of ``total`` or the caller
    marks a ``milestone`` (a tuning evaluation), and one when it ends, with the time taken."""
    start, done, shown = time.perf_counter(), 0, 0

    def line(status: str) -> None:
        elapsed = time.perf_counter() - start
        say(
            f"{description}: {done}/{total}" + (f" · {status}" if status else "") + f" · {elapsed:.0f} s",
            markup=False,
            highlight=False,
        )

    def advance(n: int, status: str = "", milestone: bool = False) -> None:
        nonlocal done, shown
        done += n
        part = done * PLAIN_PARTS // max(total, 1)
        if milestone or part > shown:
            shown = max(shown, part)
            line(status)

    line("started")
    yield advance
    line("done")
