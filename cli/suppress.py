"""`actstore suppress`: accuracy with the skill neurons (or as many random ones) suppressed."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.table import Table

from actstore.errors import ActstoreError
from actstore.tasks import source_task

from .common import (
    BatchSize,
    CrossLayout,
    DataSource,
    Device,
    DeviceMap,
    LayoutName,
    MaxLength,
    ModelDtype,
    Scheduler,
    StoreLocation,
    placement,
    with_data,
)
from .output import out, print_json, throughput

#: actstore.suppression's MODES, SCOPES and DEFAULT_PERCENTS, spelled out so that --help does not import torch
#: (tests/test_conventions.py checks that they are equal)
Mode = Literal["zero", "noise", "mean"]
Scope = Literal["layer", "global"]
DEFAULT_PERCENTS = (0, 1, 3, 5, 7, 9, 11, 13, 15)
ScopeOption = Annotated[Scope, typer.Option(help="layer: top x % of each layer; global: top x % of all neurons")]


def format_percents(percents: tuple[float, ...]) -> str:
    """``0,1,5``: the text ``parse_percents`` reads, for an option's default."""
    return ",".join(f"{p:g}" for p in percents)


def parse_percents(text: str) -> tuple[float, ...]:
    """``0,1,5``; the library checks the values (range, repeats)."""
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ActstoreError(f"--percent: expected comma-separated percentages, got '{text}'") from None


def suppress(
    store: Annotated[StoreLocation, typer.Option(help="the store holding the ranking and the prompts")],
    task: Annotated[str, typer.Option(help="the task whose data is scored")],
    percent: Annotated[
        str, typer.Option(help="comma-separated percentages of neurons to suppress (0–100)")
    ] = format_percents(DEFAULT_PERCENTS),
    mode: Annotated[
        Mode, typer.Option(help="zero, noise (Gaussian, scaled by the neuron's spread) or mean (the train baseline)")
    ] = "zero",
    scope: ScopeOption = "layer",
    random_draws: Annotated[int, typer.Option(help="random controls (at least 2, reported as mean ± std)")] = 5,
    neurons_from: Annotated[
        str | None,
        typer.Option(
            help="suppress the skill neurons ranked on this task (cross suppression; default: the task itself)"
        ),
    ] = None,
    noise_scale: Annotated[
        float, typer.Option(min=0.0, help="noise std in units of the neuron's activation spread")
    ] = 1.0,
    seed: Annotated[int, typer.Option(min=0, help="seed of the random controls and the noise")] = 0,
    model: Annotated[str | None, typer.Option(help="default: the model the ranking was made with")] = None,
    split: Annotated[str, typer.Option(help="the split to score")] = "validation",
    batch_size: BatchSize = 32,
    max_length: MaxLength = 128,
    layout: Annotated[
        LayoutName | None,
        typer.Option(help="pt, sn, peft, causal or prefix (default: the layout the ranking was made in)"),
    ] = None,
    cross_layout: CrossLayout = False,
    device: Device = None,
    model_dtype: ModelDtype = None,
    device_map: DeviceMap = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    scheduler: Scheduler = None,
    data: DataSource = DataSource(),
) -> None:
    """Suppress the top x % skill neurons while the model runs; accuracy against x, with random controls."""
    from actstore.models import load_model
    from actstore.results import suppression_name
    from actstore.scheduler import using
    from actstore.store import Store
    from actstore.suppression import SuppressOptions, suppress as run_suppress

    options = SuppressOptions(
        percents=parse_percents(percent),
        mode=mode,
        scope=scope,
        random_draws=random_draws,
        random_seed=seed,
        noise_scale=noise_scale,
    )
    source = neurons_from or task
    ranked = Store(store).ranking_reader(source)  # fails clearly before any data or model is loaded
    with using(scheduler, store):  # so does an unreachable scheduler
        spec, splits = data.load(task, split)
        examples = next(iter(splits.values()))
        made_with = ranked.spec.model
        lm = load_model(
            model or made_with.name,
            layout=layout or made_with.layout,
            cross_layout=cross_layout,
            **placement(device, model_dtype, device_map),
        )
        target = Store(store, mode="r+")
        with target.writing():
            prompts = target.prompt_spec(source_task(spec))
            runs = len(options.percents) * (1 + options.random_draws) * (len(prompts.seeds) if prompts else 0)
            with throughput(f"suppress {task}", len(examples) * runs) as rates:
                result = run_suppress(
                    target,
                    lm,
                    spec,
                    examples,
                    options,
                    neurons_from=neurons_from,
                    batch_size=batch_size,
                    max_length=max_length,
                    tick=lambda n: rates.add(n, 0),
                )
    skill = result["accuracy_skill"].values  # (seed, percent)
    control = result["accuracy_random"].values.mean(axis=1)  # (draw, percent): seed mean per draw
    rows = [
        {
            "percent": float(p),
            "neurons": int(n),
            "skill_mean": float(s.mean()),
            "skill_std": float(s.std()),
            "random_mean": float(r.mean()),
            "random_std": float(r.std()),
        }
        for p, n, s, r in zip(result["percent"].values, result["suppressed"].values.sum(axis=1), skill.T, control.T)
    ]
    where = f"{store}/results/suppression/{suppression_name(task, source, mode, scope)}"
    if as_json:
        print_json(
            {
                "task": task,
                "split": examples.name,
                "neurons_from": source,
                "mode": mode,
                "scope": scope,
                "seeds": result["seed"].values.tolist(),
                "rows": rows,
                "accuracy_skill": skill.T.tolist(),
                "stored": where,
            }
        )
        return
    per = "of each layer" if scope == "layer" else "of all neurons"
    table = Table(
        title=f"{task}/{examples.name} with the top x % skill neurons {per} of {source} suppressed ({mode}; "
        f"{len(examples)} examples)"
    )
    for column in ("percent", "neurons", "skill acc (± std over seeds)", "random acc (± std over draws)"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            f"{r['percent']:g}",
            str(r["neurons"]),
            f"{r['skill_mean']:.4f} ± {r['skill_std']:.4f}",
            f"{r['random_mean']:.4f} ± {r['random_std']:.4f}",
        )
    out.print(table)
    out.print(f"{len(skill)} seeds, {options.random_draws} random draws; stored in {where}")


COMMANDS = [with_data(suppress)]
