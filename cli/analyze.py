"""`actstore transfer`, `correlate`, `compare-adversarial`, `report`: the paper's analyses and figures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from .common import (
    BatchSize,
    CrossLayout,
    DataDir,
    DataSource,
    Device,
    DeviceMap,
    LayoutName,
    Limit,
    MaxLength,
    ModelDtype,
    Scheduler,
    StoreLocation,
    placement,
)
from .output import out, print_json, throughput
from .suppress import ScopeOption, format_percents, parse_percents

if TYPE_CHECKING:
    import xarray as xr

    from actstore.store import Store

#: actstore.analysis's NORMALIZE and ADVERSARIAL_PERCENTS, spelled out so that --help does not import torch
#: (tests/test_conventions.py checks that they are equal)
Normalize = Literal["none", "zscore"]
ADVERSARIAL_PERCENTS = (1, 3, 5, 10, 15)

StorePath = Annotated[StoreLocation, typer.Option(help="the store: a path or a URL such as s3://bucket/prefix")]
Tasks = Annotated[str, typer.Option(help="comma-separated tasks, e.g. sst2,imdb,qnli")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _tasks(text: str) -> list[str]:
    from actstore.analysis import distinct_tasks

    return distinct_tasks(text.split(","))


def _existing(path: StoreLocation) -> Store:
    """A store to add results to; a mistyped path is an error, never a new empty store."""
    from actstore.store import Store

    return Store(path, mode="r+")


def _matrix(title: str, matrix: xr.DataArray, fmt: str = "{:.3f}") -> Table:
    rows, cols = matrix.dims
    table = Table(title=title)
    table.add_column(f"{rows} \\ {cols}")
    for name in matrix[cols].values:
        table.add_column(str(name), justify="right")
    for name, values in zip(matrix[rows].values, matrix.values):
        table.add_row(str(name), *(fmt.format(v) for v in values))
    return table


def transfer(
    store: StorePath,
    tasks: Tasks,
    model: Annotated[str | None, typer.Option(help="default: the model the first task's prompts were made for")] = None,
    split: Annotated[str, typer.Option(help="the split to score")] = "validation",
    recompute: Annotated[bool, typer.Option(help="evaluate every pair again, not only missing or stale ones")] = False,
    batch_size: BatchSize = 32,
    max_length: MaxLength = 128,
    data_dir: DataDir = None,
    limit: Limit = None,
    layout: Annotated[
        LayoutName | None,
        typer.Option(help="pt, sn, peft, causal or prefix (default: the layout the first task's prompts were made in)"),
    ] = None,
    cross_layout: CrossLayout = False,
    device: Device = None,
    model_dtype: ModelDtype = None,
    device_map: DeviceMap = None,
    as_json: AsJson = False,
) -> None:
    """Transferability: accuracy of each task's prompts on each task's data, relative to the data task's own prompts.

    Pairs not yet evaluated on exactly these examples (e.g. another --limit) are evaluated first.
    """
    from actstore import analysis
    from actstore.evaluation import check_transfer_runs, evaluate
    from actstore.models import load_model

    names = _tasks(tasks)
    target = _existing(store)
    analysis.transfer_pairs(target, names)  # fails on a task without prompts before any data is read
    loaded = {name: DataSource(data_dir=data_dir, limit=limit).load(name, split) for name in names}
    data = {name: next(iter(splits.values())) for name, (_, splits) in loaded.items()}
    pairs = analysis.transfer_pairs(
        target, names, fingerprints={n: d.fingerprint for n, d in data.items()}, all_pairs=recompute
    )
    with target.writing():
        if pairs:
            own = target.prompt_spec(names[0])
            assert own is not None  # transfer_pairs checked that every task holds its own prompts
            made_for = own.model
            lm = load_model(
                model or made_for.name,
                layout=layout or made_for.layout,
                cross_layout=cross_layout,
                **placement(device, model_dtype, device_map),
            )
            check_transfer_runs(target, lm, data, pairs, batch_size=batch_size, max_length=max_length)
            n_seeds = len(own.seeds)
            with throughput("transfer", sum(len(data[d]) for d, _ in pairs) * n_seeds) as rates:
                for name, prompts in pairs:
                    evaluate(
                        target,
                        lm,
                        loaded[name][0],
                        data[name],
                        prompts_from=prompts,
                        batch_size=batch_size,
                        max_length=max_length,
                        tick=lambda n: rates.add(n, 0),
                    )
        result = analysis.transfer(target, names)
    if as_json:
        print_json(
            {
                "tasks": names,
                "seeds": result["seed"].values.tolist(),
                "evaluated": len(pairs),
                "relative": result["relative_mean"].values.tolist(),
                "accuracy": result["accuracy_mean"].values.tolist(),
            }
        )
        return
    out.print(
        _matrix(
            "transferability: accuracy relative to the data task's own prompts (mean over seeds)",
            result["relative_mean"],
        )
    )
    out.print(_matrix("accuracy (mean over seeds)", result["accuracy_mean"]))
    out.print(f"{len(pairs)} pair(s) evaluated; stored in {store}/results/transfer/{','.join(names)}")


def correlate(
    store: StorePath,
    tasks: Tasks,
    normalize: Annotated[
        Normalize, typer.Option(help="none, or zscore: standardise each neuron across the tasks first")
    ] = "none",
    as_json: AsJson = False,
    scheduler: Scheduler = None,
) -> None:
    """Task specificity: Spearman correlation of the tasks' neuron predictivities per layer, averaged over layers."""
    from actstore import analysis
    from actstore.scheduler import using

    target = _existing(store)
    with using(scheduler, store), target.writing():
        result = analysis.correlate(target, _tasks(tasks), normalize)
    if as_json:
        print_json(
            {
                "tasks": result["task_a"].values.tolist(),
                "normalize": normalize,
                "rho_mean": result["rho_mean"].values.tolist(),
                "p_max": result["p_max"].values.tolist(),
                "rho": result["rho"].values.tolist(),
                "p": result["p"].values.tolist(),
            }
        )
        return
    out.print(_matrix(f"Spearman's rho, mean over {result.sizes['layer']} layers ({normalize})", result["rho_mean"]))
    out.print(_matrix("largest p-value over layers", result["p_max"], "{:.2g}"))


def compare_adversarial(
    store: StorePath,
    task: Annotated[str, typer.Option(help="the adversarial task, ranked with its clean task's baseline")],
    clean: Annotated[str | None, typer.Option(help="default: the task's clean source in the registry")] = None,
    percent: Annotated[str, typer.Option(help="comma-separated top percentages to compare")] = format_percents(
        ADVERSARIAL_PERCENTS
    ),
    scope: ScopeOption = "layer",
    as_json: AsJson = False,
    scheduler: Scheduler = None,
) -> None:
    """Are the clean task's skill neurons among the most predictive on the adversarial data?"""
    from actstore import analysis
    from actstore.scheduler import using

    target = _existing(store)
    with using(scheduler, store), target.writing():
        result = analysis.compare_adversarial(target, task, clean=clean, percents=parse_percents(percent), scope=scope)
    spec = result.attrs["spec"]
    columns = ("overlap", "chance", "adv_predictivity_clean_top", "adv_predictivity_adv_top", "clean_top_percentile")
    rows = [
        {"percent": float(p), **{c: float(result[c].sel(percent=p)) for c in columns}} for p in result["percent"].values
    ]
    summary = {"rho_mean": float(result["rho_mean"]), "adv_predictivity_all": float(result["adv_predictivity_all"])}
    if as_json:
        print_json({"task": task, "clean": spec["clean"], "scope": scope, "rows": rows, **summary})
        return
    table = Table(title=f"top neurons of {spec['clean']} on {task} ({scope} scope)")
    for column in ("top %", "overlap", "chance", "adv pred. of clean top", "adv pred. of adv top", "percentile"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(f"{row['percent']:g}", *(f"{row[c]:.3f}" for c in columns))
    out.print(table)
    out.print(
        f"mean adversarial predictivity of all neurons {summary['adv_predictivity_all']:.3f}; Spearman's rho "
        f"of the predictivities, mean over layers {summary['rho_mean']:.3f}"
    )


def report(
    store: StorePath,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the figures and index.md / index.html")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a line per figure")] = False,
    neurons: Annotated[int, typer.Option(min=0, help="top skill neurons per task that get a page (0: none)")] = 10,
    scheduler: Scheduler = None,
) -> None:
    """Render every figure the store has data for (PNG and SVG), an index page with the accuracy table, and a page
    per top skill neuron of each task under neurons/."""
    from actstore.report import render
    from actstore.scheduler import using
    from actstore.store import Store

    with using(scheduler, store):
        written = render(Store(store), out_dir, neuron_pages=neurons)
    if as_json:
        figures = [
            {"title": title, "png": f"{out_dir / stem}.png", "svg": f"{out_dir / stem}.svg"}
            for title, stem, _ in written.figures
        ]
        pages = {task: [str(out_dir / row["page"]) for row in rows] for task, rows in written.neurons.items()}
        print_json(
            {
                "out": str(out_dir),
                "figures": figures,
                "skipped": list(written.skipped),
                "tasks": len(written.table),
                "neuron_pages": pages,
                "index": [str(out_dir / "index.md"), str(out_dir / "index.html")],
            }
        )
        return
    for title, stem, _ in written.figures:
        out.print(f"{title}: {out_dir / stem}.png, .svg")
    for note in written.skipped:
        out.print(f"skipped, not in the store: {note}")
    out.print(
        f"{len(written.figures)} figure(s), accuracy table of {len(written.table)} task(s), "
        f"{sum(map(len, written.neurons.values()))} neuron page(s); index: {out_dir / 'index.md'}, "
        f"{out_dir / 'index.html'}"
    )


COMMANDS = [transfer, correlate, compare_adversarial, report]
