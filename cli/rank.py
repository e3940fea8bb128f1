"""`actstore rank`: baselines, neuron accuracies, predictivities and skill-neuron rankings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from actstore.ranking import model_accuracy, rank as run_rank, top_neurons
from actstore.store import Store

from .output import out


def rank(
    store: Annotated[Path, typer.Option(help="the store holding the task's extractions")],
    task: Annotated[str, typer.Option(help="the task to rank")],
    split: Annotated[str, typer.Option(help="the split the accuracies are measured on")] = "validation",
    baseline_from: Annotated[Optional[str], typer.Option(help="take the train baseline of this task")] = None,
    top: Annotated[int, typer.Option(help="rows of the top-neuron table")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Rank skill neurons (Eq. 2–5 of METHOD.md) and write the ranking into the store."""
    target = Store(store, mode="a")
    with target.writing():
        ranking = run_rank(target, task, split=split, baseline_from=baseline_from)
    accuracy = model_accuracy(target, task, split)
    rows = top_neurons(ranking, top)
    spec = ranking.attrs["spec"]
    if as_json:
        out.print_json(json.dumps({"task": task, "split": split, "baseline_task": spec["baseline_task"],
                                   "model_accuracy": accuracy.tolist(), "top": rows}))
        return
    table = Table(title=f"top {top} skill neurons of {task} ({split}, baseline from {spec['baseline_task']})")
    for column in ("rank", "layer", "neuron", "predictivity", "best token"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["rank"]), str(row["layer"]), str(row["neuron"]), f"{row['predictivity']:.4f}",
                      str(row["best_token"]))
    out.print(table)
    out.print(f"model accuracy per seed: {', '.join(f'{a:.4f}' for a in accuracy)} "
              f"(mean {np.mean(accuracy):.4f}); ranking stored in {store}/rankings/{task}")


COMMANDS = [rank]
