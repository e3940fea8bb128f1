"""`actstore examples`: the examples that drive one neuron, with their texts."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from .common import StoreLocation
from .output import out, print_json


def examples(
    store: Annotated[StoreLocation, typer.Option(help="the store: a path or a URL such as s3://bucket/prefix")],
    task: Annotated[str, typer.Option(help="the task whose examples to show")],
    layer: Annotated[int, typer.Option(min=0, help="the layer (numbered across stacks, as in rankings)")],
    neuron: Annotated[int, typer.Option(min=0, help="the neuron in its layer")],
    token: Annotated[
        int | None,
        typer.Option(min=0, help="prompt token (default: the neuron's best token in the task's ranking, else 0)"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="prompt seed (default: the first)")] = None,
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="examples at each end")] = 10,
    split: Annotated[str, typer.Option(help="the split to look in")] = "validation",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of two tables")] = False,
) -> None:
    """The examples with the highest and lowest activation of a neuron (a bits-only store: those its bit gets right
    and wrong), with text, label, the model's prediction and the activation."""
    from actstore.examples import top_examples
    from actstore.store import Store

    found = top_examples(Store(store), task, layer, neuron, token=token, seed=seed, k=k, split=split)
    if as_json:
        print_json(asdict(found))
        return
    where = f"{task}/{split} layer {layer} neuron {neuron}, token {found.token}, seed {found.seed}"
    baseline = "" if found.baseline is None else f", baseline {found.baseline:.4f}"
    heads = ("highest", "lowest") if found.ranked_by == "activation" else ("right", "wrong")
    for head, rows in zip(heads, (found.top, found.bottom)):
        table = Table(title=f"{head} {len(rows)}: {where} (neuron accuracy {found.accuracy:.4f}{baseline})")
        for column in (
            "example",
            "activation" if found.ranked_by == "activation" else "above",
            "label",
            "prediction",
            "text",
        ):
            table.add_column(column, overflow="fold")
        for row in rows:
            value = f"{row['activation']:.4f}" if found.ranked_by == "activation" else str(row["above"])
            table.add_row(str(row["example"]), value, row["label"], str(row["prediction"]), row["text"] or "")
        out.print(table)


COMMANDS = [examples]
