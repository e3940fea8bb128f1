"""`actstore rank`: baselines, neuron accuracies, predictivities and skill-neuron rankings."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import typer

from .common import CrossLayout, Scheduler, StoreLocation
from .output import out, print_json, skill_table

#: actstore.ranking.READS, spelled out so that --help does not import the library
Read = Literal["acts", "bits"]


def rank(
    store: Annotated[StoreLocation, typer.Option(help="the store holding the task's extractions")],
    task: Annotated[str, typer.Option(help="the task to rank")],
    split: Annotated[str, typer.Option(help="the split the accuracies are measured on")] = "validation",
    baseline_from: Annotated[str | None, typer.Option(help="take the train baseline of this task")] = None,
    subtask: Annotated[
        str | None,
        typer.Option(
            help="multi-class tasks: binary sub-task(s), comma-separated: <classes>-vs-<classes|rest> "
            "(e.g. positive-vs-negative, neutral-vs-rest; join classes with +), one-vs-rest (every class against "
            "the rest) or combined (the first paper's skill neurons filled from positive-vs-negative and "
            "neutral-vs-rest); stored as rankings/<task>:<subtask>"
        ),
    ] = None,
    read: Annotated[
        Read | None,
        typer.Option(
            help="count the stored bits or the float16/float32 values (default: "
            "the bits when kept; the ranking is the same either way)"
        ),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="rows of the top-neuron table")] = 10,
    cross_layout: CrossLayout = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    scheduler: Scheduler = None,
) -> None:
    """Rank skill neurons (Eq. 2–5 of METHOD.md) and write the ranking into the store."""
    from actstore.ranking import model_accuracy, rank as run_rank, rank_subtasks, top_neurons
    from actstore.scheduler import using
    from actstore.store import RankingReader, Store

    target = Store(store, mode="r+")
    with using(scheduler, store), target.writing():
        if subtask is None:
            rankings = {
                task: run_rank(
                    target, task, split=split, baseline_from=baseline_from, read=read, cross_layout=cross_layout
                )
            }
        else:
            requests = [s.strip() for s in subtask.split(",") if s.strip()]
            rankings = rank_subtasks(
                target, task, requests, split=split, baseline_from=baseline_from, read=read, cross_layout=cross_layout
            )
    accuracy = model_accuracy(target, task, split)
    readers = {name: RankingReader.from_dataset(ds) for name, ds in rankings.items()}
    baseline_task = next(iter(readers.values())).spec.baseline_task
    if as_json:
        payload = {"task": task, "split": split, "baseline_task": baseline_task, "model_accuracy": accuracy.tolist()}
        if subtask is None:
            payload["top"] = top_neurons(rankings[task], top)
        else:
            payload["rankings"] = [
                {
                    "ranking": name,
                    "subtask": reader.spec.subtask,
                    "positive": reader.spec.positive,
                    "negative": reader.spec.negative,
                    "parts": reader.spec.parts,
                    "n_examples": reader.spec.n_examples,
                    "top": top_neurons(reader.dataset, top),
                }
                for name, reader in readers.items()
            ]
        print_json(payload)
        return
    for name, reader in readers.items():
        spec = reader.spec
        what = name if spec.subtask is None else f"{task} sub-task {spec.subtask}"
        if spec.positive:
            what += f" ({'+'.join(spec.positive)} = 1 vs {'+'.join(spec.negative)} = 0, {spec.n_examples} examples)"
        elif spec.parts:
            what += f" (filled in turn from {', '.join(spec.parts)})"
        out.print(
            skill_table(
                f"top {top} skill neurons of {what} ({split}, baseline from {baseline_task})",
                top_neurons(reader.dataset, top),
            )
        )
    where = ", ".join(f"{store}/rankings/{name}" for name in rankings)
    out.print(
        f"model accuracy per seed: {', '.join(f'{a:.4f}' for a in accuracy)} "
        f"(mean {np.mean(accuracy):.4f}); ranking stored in {where}"
    )


COMMANDS = [rank]
