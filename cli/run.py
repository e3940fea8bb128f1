"""`actstore run`: an experiment file, prompts → extract → rank for each task, then its analyses, resumable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from actstore.errors import ActstoreError

from .common import Scheduler, StoreLocation
from .output import err, out, print_json, skill_table, steps

if TYPE_CHECKING:
    from actstore.estimate import Estimate
    from actstore.experiment import AnalysisReport


def _blocks_done(location: str | StoreLocation) -> int | None:
    """Extraction blocks the store holds (None: no store yet), to tell afterwards whether any were added."""
    from actstore.store import open_store

    try:
        return sum(e["blocks_done"] for e in open_store(location).summary()["extractions"].values())
    except ActstoreError:
        return None


class _Work:
    """The experiment's progress bars (plain lines where stderr is no terminal: `make demo > log`), noting whether
    any tuning step, ranking or analysis ran (an extraction bar also counts the blocks it skips, so its blocks are
    counted in the store instead)."""

    def __init__(self) -> None:
        self.done = False

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        with steps(description, total, lines=True) as advance:

            def counted(n: int, status: str = "", milestone: bool = False) -> None:
                self.done = self.done or (n > 0 and not description.startswith("extract "))
                advance(n, status, milestone)

            yield counted


def _hours(hours: float | None) -> str:
    if hours is None:
        return "? GPU-h"
    return "" if hours == 0 else "<0.01 GPU-h" if hours < 0.01 else f"{hours:,.2f} GPU-h"


def _total_hours(hours: float) -> str:
    """A total to one decimal; a small one as "<0.1", never as a "0.0" that reads as no GPU work at all."""
    return "0" if hours == 0 else "<0.1" if hours < 0.05 else f"{hours:,.1f}"


def _print_estimate(estimate: Estimate) -> None:
    """One line per step, in columns; the totals, then what the numbers assume."""
    from actstore.estimate import human_bytes

    say = lambda line: out.print(line, markup=False)  # noqa: E731 -- plain text: [data] is no markup
    say(f"dry run of {estimate.file}: nothing is loaded, downloaded or written")
    for plan in estimate.models:
        size = plan.size
        decoder = f" + {size['n_decoder_layers']} decoder" if size["n_decoder_layers"] else ""
        say(
            f"\n{plan.model} → {plan.store}  ({size['architecture']}: {size['n_layers']}{decoder} layers × "
            f"{size['n_neurons']} FFN neurons, hidden {size['hidden']}; {plan.examples_per_s:,.0f} forward passes/s "
            "assumed)"
        )
        rows = [
            (
                str(i),
                step.kind,
                step.what,
                "" if step.examples is None or not step.seeds else f"{step.examples:,} ex × {step.seeds} seeds",
                "" if step.bytes == 0 else human_bytes(step.bytes),
                _hours(step.gpu_hours),
                step.note,
            )
            for i, step in enumerate(plan.steps, 1)
        ]
        widths = [max(len(row[c]) for row in rows) for c in range(6)]
        for row in rows:
            cells = [
                cell.rjust(w) if c in (0, 3, 4, 5) else cell.ljust(w) for c, (cell, w) in enumerate(zip(row, widths))
            ]
            say(("  " + "  ".join(cells) + "  " + row[6]).rstrip())
        say(
            f"{plan.model}: {human_bytes(plan.bytes)} stored, {_total_hours(plan.gpu_hours)} GPU-hours (estimated); "
            f"at that rate extraction writes up to {human_bytes(round(plan.write_rate))}/s, which the store's disk "
            "must keep up with"
        )
    say(f"\ntotal: {human_bytes(estimate.bytes)} stored, {_total_hours(estimate.gpu_hours)} GPU-hours (estimated)")
    for note in estimate.notes:
        say(f"- {note}")


def run(
    file: Annotated[Path, typer.Argument(help="the experiment TOML (see data/experiments/)")],
    model: Annotated[str | None, typer.Option(help="override the file's model(s), as --set model=NAME")] = None,
    store: Annotated[
        StoreLocation | None, typer.Option(help="override the file's store (--storage-option applies to this one)")
    ] = None,
    override: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="override a value of the file, e.g. --set data.dev_limit=8 or "
            "--set 'tasks=[\"sst2\"]' (a TOML value; a bare word is a string); repeat for several",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="print every step with the bytes it would store and the GPU-hours it would take (an "
            "estimate); load, download and write nothing",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    scheduler: Scheduler = None,
) -> None:
    """Run an experiment file; re-running it after a crash or after adding a task only does the missing work."""
    from actstore.experiment import Experiment, run as run_experiment

    experiment = Experiment.load(file, [*(override or ()), *([f"model={model}"] if model else [])])
    if store is not None:
        if len(experiment.models) > 1 and "{model}" not in str(store):
            raise ActstoreError(
                f"--store: the file runs {len(experiment.models)} models, each into a store of its "
                "own: put {model} in it"
            )
        experiment = replace(experiment, store=store)
    if dry_run:
        from actstore.estimate import estimate

        planned = estimate(experiment, str(file))
        print_json(planned.as_json()) if as_json else _print_estimate(planned)
        return
    from actstore.scheduler import using

    singles = experiment.each_model()
    before, work = [_blocks_done(s.store) for s in singles], _Work()
    analyses: list[AnalysisReport] = []
    with using(scheduler, singles[0].store):  # where the rankings are counted
        # under --json the running commentary goes to stderr: stdout holds the one JSON document
        reports = run_experiment(
            experiment, progress=work.progress, say=err.print if as_json else out.print, analyses=analyses
        )
    complete = not work.done and None not in before and [_blocks_done(s.store) for s in singles] == before
    stores = [str(s.store) for s in singles]
    if as_json:
        print_json(
            {
                "store": stores[0] if len(stores) == 1 else stores,
                "tasks": [asdict(r) for r in reports],
                "analyses": [asdict(a) for a in analyses],
                "already_complete": complete,
            }
        )
        return
    for report in reports:
        accs = list(report.dev_accuracy.values())
        which = f"{report.model}: " if len(stores) > 1 else ""
        out.print(
            f"\n[bold]{which}{report.task}[/] (prompts of {report.prompts_from}): model accuracy per seed "
            + ", ".join(f"{seed}: {acc:.4f}" for seed, acc in report.dev_accuracy.items())
            + f"  (mean {sum(accs) / len(accs):.4f})"
        )
        out.print(skill_table(f"top skill neurons of {report.task}", report.top))
    for store_ in stores:
        out.print(
            f"\nstore: {store_}  (open it with actstore.open_store, or `actstore info {store_}`)"
            + ("; already complete" if complete else "")
        )


COMMANDS = [run]
