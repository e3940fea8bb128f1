"""`actstore tune` and `actstore eval`: train prompts per seed, and measure their accuracy on any task."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from actstore.launch import Shard
from actstore.tasks import source_task

from .common import (
    BatchSize,
    CrossLayout,
    DataSource,
    Device,
    DeviceMap,
    Layout,
    MaxLength,
    ModelDtype,
    StoreLocation,
    parse_seeds,
    placement,
    with_data,
)
from .output import out, print_json, steps, throughput

Model = Annotated[str, typer.Option(help="Hugging Face name, registry alias (all-minilm-l6-v2) or local directory")]
StorePath = Annotated[
    StoreLocation, typer.Option(help="the Zarr store (created if absent): a path or a URL such as s3://bucket/prefix")
]
ExistingStore = Annotated[
    StoreLocation, typer.Option(help="the Zarr store holding the prompts (the evaluation is added to it)")
]


def tune(
    model: Model,
    task: Annotated[str, typer.Option(help="a registry task or a name for --data-files")],
    store: StorePath,
    seeds: Annotated[str, typer.Option(help="comma-separated seeds, one prompt each")] = "0,1,2,3,4",
    prompt_length: Annotated[int, typer.Option(help="soft prompt tokens")] = 100,
    lr: Annotated[float | None, typer.Option(min=0.0, help="AdamW learning rate > 0 (default 1e-3; T5 5e-3)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="examples per optimiser step")] = 16,
    grad_accum: Annotated[int, typer.Option(min=1, help="split each batch into this many micro-batches")] = 1,
    max_steps: Annotated[int, typer.Option(min=1, help="optimiser steps at most")] = 1000,
    eval_every: Annotated[int, typer.Option(min=1, help="steps between dev evaluations")] = 100,
    patience: Annotated[int, typer.Option(min=1, help="evaluations without improvement before stopping")] = 5,
    max_length: MaxLength = 128,
    dev_limit: Annotated[int | None, typer.Option(min=1, help="evaluate on a fixed sample of N dev examples")] = None,
    layout: Layout = "pt",
    device: Device = None,
    model_dtype: ModelDtype = None,
    device_map: DeviceMap = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    data: DataSource = DataSource(),
) -> None:
    """Prompt-tune a frozen model: one prompt per seed, best checkpoint on dev, stored as the task's prompts."""
    from actstore.models import load_model
    from actstore.store import Store
    from actstore.tuning import TuneOptions, check_tune, tune as run_tune

    options = TuneOptions(
        n_tokens=prompt_length,
        lr=lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_steps=max_steps,
        eval_every=eval_every,
        patience=patience,
        max_length=max_length,
    )
    seed_list = parse_seeds(seeds)
    spec, splits = data.load(task, "train,validation")
    dev = splits["validation"].sample(dev_limit) if dev_limit is not None else splits["validation"]
    shard = Shard.from_env()
    lm = load_model(model, layout=layout, **placement(device, model_dtype, device_map, shard))
    check_tune(lm, spec, splits["train"], dev, seed_list, options)
    target = Store(store, mode="a")
    mine = sum(shard.owns(i) for i in range(len(seed_list)))
    tuned: set[int] = set()  # none: every seed was stored already, and the table shows what is
    with target.writing(shared=shard.sharded), steps(f"tune {task}", mine * max_steps) as advance:

        def on_step(seed: int, step: int, loss: float) -> None:
            tuned.add(seed)
            advance(1, f"seed {seed} · step {step} · loss {loss:.4f}")

        result = run_tune(target, lm, spec, splits["train"], dev, seed_list, options, shard=shard, on_step=on_step)
    rows = [
        {
            "seed": int(s),
            "dev_accuracy": float(result["best_accuracy"].sel(seed=s)),
            "best_step": int(result["best_step"].sel(seed=s)),
            "wall_s": float(result["wall_s"].sel(seed=s)),
        }
        for s in result["seed"].values
    ]
    accs = np.array([r["dev_accuracy"] for r in rows])
    if as_json:
        print_json(
            {"task": task, "seeds": rows, "mean": accs.mean(), "std": accs.std(ddof=0), "already_complete": not tuned}
        )
        return
    table = Table(title=f"prompt tuning of {task} ({len(dev)} dev examples)")
    for column in ("seed", "dev accuracy", "best step", "wall s"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["seed"]), f"{r['dev_accuracy']:.4f}", str(r["best_step"]), f"{r['wall_s']:.0f}")
    out.print(table)
    if len(rows) < len(seed_list):  # a rank that finished before the others: the last one publishes the prompts
        out.print(
            f"rank {shard.rank} of {shard.world}: {len(rows)} of {len(seed_list)} seeds tuned so far; the rank "
            f"that finishes last publishes {store}/prompts/{task}"
        )
        return
    out.print(
        f"dev accuracy {accs.mean():.4f} ± {accs.std():.4f} over {len(rows)} seeds; prompts stored in "
        f"{store}/prompts/{task}" + ("" if tuned else " (already complete)")
    )


def eval(  # noqa: A001 - the command is `actstore eval`
    model: Model,
    task: Annotated[str, typer.Option(help="the task whose data is scored")],
    store: ExistingStore,
    prompts_from: Annotated[
        str | None,
        typer.Option(
            help="use this task's prompts (default: the task's own, or its clean source's for adversarial tasks)"
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="the split to score")] = "validation",
    batch_size: BatchSize = 32,
    max_length: MaxLength = 128,
    layout: Layout = "pt",
    cross_layout: CrossLayout = False,
    device: Device = None,
    model_dtype: ModelDtype = None,
    device_map: DeviceMap = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    data: DataSource = DataSource(),
) -> None:
    """Accuracy per seed (and mean ± std) of stored prompts on a task; the result is stored too."""
    from actstore.evaluation import evaluate
    from actstore.models import load_model
    from actstore.store import Store

    spec, splits = data.load(task, split)
    examples = next(iter(splits.values()))
    lm = load_model(model, layout=layout, cross_layout=cross_layout, **placement(device, model_dtype, device_map))
    target = Store(store, mode="r+")
    with target.writing():
        prompts = target.prompt_spec(prompts_from or source_task(spec))
        with throughput(f"eval {task}", len(examples) * (len(prompts.seeds) if prompts else 0)) as rates:
            result = evaluate(
                target,
                lm,
                spec,
                examples,
                prompts_from=prompts_from,
                batch_size=batch_size,
                max_length=max_length,
                tick=lambda n: rates.add(n, 0),
            )
    source = result.attrs["spec"]["prompts_from"]
    accs = result["accuracy"].values
    if as_json:
        print_json(
            {
                "task": task,
                "split": examples.name,
                "prompts_from": source,
                "accuracy": dict(zip(map(str, result["seed"].values.tolist()), accs.tolist())),
                "mean": float(accs.mean()),
                "std": float(accs.std()),
            }
        )
        return
    table = Table(title=f"{task}/{examples.name} with the prompts of {source} ({len(examples)} examples)")
    table.add_column("seed", justify="right")
    table.add_column("accuracy", justify="right")
    for seed, acc in zip(result["seed"].values.tolist(), accs):
        table.add_row(str(seed), f"{acc:.4f}")
    out.print(table)
    out.print(
        f"accuracy {accs.mean():.4f} ± {accs.std():.4f} over {len(accs)} seeds; stored in "
        f"{store}/results/evaluation/{task}@{source}"
    )


COMMANDS = [with_data(tune), with_data(eval)]
