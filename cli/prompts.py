"""`actstore prompts import|export`: released prompts into a store, and a store's prompts out to files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from actstore.errors import ActstoreError
from actstore.prompts import FORMATS, RN_LAYOUT, Format, PromptSet, Source, export_prompts, robust_neurons_seeds

from .common import Layout, StoreLocation, parse_seeds
from .output import out, print_json

GROUP = "prompts"


def import_(
    files: Annotated[
        list[Path],
        typer.Argument(
            help=".pt/.npy/.safetensors files or PEFT checkpoint folders, one per "
            "seed (or one [seeds, tokens, hidden] array); --from "
            "robust-neurons: the one folder holding "
            "seed_<s>/<Task>Prompt<Model>/task_prompt"
        ),
    ],
    task: Annotated[str, typer.Option(help="the task the prompts were trained on")],
    store: Annotated[StoreLocation, typer.Option(help="the store to add them to")],
    model: Annotated[str, typer.Option(help="the model they were trained for")],
    source: Annotated[
        Source,
        typer.Option(
            "--from",
            help="files: the files given; robust-neurons: the seed paper's released tree, every seed folder "
            "(seed_su as seed 0, seed_33 as 33, ...)",
        ),
    ] = "files",
    seeds: Annotated[
        str | None,
        typer.Option(
            help="seed of each prompt (default 0, 1, ...; not with --from robust-neurons, whose folders name them)"
        ),
    ] = None,
    layout: Layout = "pt",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a line")] = False,
) -> None:
    """Import released prompts (Prompt-Transferability .pt, PEFT prompt tuning, the Robust-Neurons tree) as a task's
    prompts."""
    from actstore.models import load_model
    from actstore.store import Store

    if source == "robust-neurons":
        if len(files) != 1:
            raise ActstoreError(f"--from robust-neurons takes one folder (the release's root), got {len(files)} paths")
        if seeds is not None:
            raise ActstoreError("--from robust-neurons takes the seeds from the seed_<s> folders; leave out --seeds")
        if layout != RN_LAYOUT:
            raise ActstoreError(
                f"the Robust-Neurons prompts were tuned in the '{RN_LAYOUT}' layout, not '{layout}'; "
                f"import them with --layout {RN_LAYOUT}"
            )
        robust_neurons_seeds(files[0], task)  # the tree and the task, before a model is loaded
        lm = load_model(model, device="cpu", layout=layout)
        prompts = PromptSet.from_robust_neurons(files[0], task, lm.spec.architecture, lm.spec.hidden)
    else:
        prompts = PromptSet.from_files(files, parse_seeds(seeds) if seeds is not None else None)
        lm = load_model(model, device="cpu", layout=layout)
    prompts.check_fits(lm.spec, 1)
    target = Store(store, mode="a")
    with target.writing():
        target.put_prompts(task, prompts.vectors, prompts.spec(lm.spec))
    if as_json:
        print_json(
            {
                "task": task,
                "store": str(store),
                "seeds": list(prompts.seeds),
                "n_tokens": prompts.n_tokens,
                "source": prompts.source,
                "layout": lm.spec.layout,
                "seed_names": list(prompts.seed_names),
                "files": list(prompts.files),
            }
        )
        return
    named = f" ({', '.join(prompts.seed_names)})" if prompts.seed_names else ""
    out.print(
        f"prompts/{task}: {len(prompts.seeds)} seeds{named} × {prompts.n_tokens} tokens from {prompts.source} "
        f"({lm.spec.layout} layout) in {store}"
    )


def export(
    task: Annotated[str, typer.Option(help="whose prompts")],
    store: Annotated[StoreLocation, typer.Option(help="the store holding them")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder to write")],
    fmt: Annotated[Format, typer.Option("--format", help=f"one of {', '.join(FORMATS)}")] = "pt",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a line")] = False,
) -> None:
    """Write a task's prompts as one file (pt: a [tokens, hidden] tensor; npy: the same array) or PEFT checkpoint
    folder per seed, or as the Robust-Neurons tree (seed_<s>/<Task>Prompt<Model>/task_prompt, the seeds under their
    recorded names)."""
    from actstore.models import hub_id
    from actstore.store import open_store

    source = open_store(store)
    prompts = PromptSet.stored(source, task)
    if prompts is None:
        raise ActstoreError(f"{store} holds no prompts for task '{task}'")
    held = source.prompt_spec(task)
    assert held is not None  # PromptSet.stored found them
    made_for = held.model
    written = export_prompts(
        prompts, out_dir, fmt, base_model=hub_id(made_for.name), task=task, architecture=made_for.architecture
    )
    if as_json:
        print_json({"task": task, "format": fmt, "out": str(out_dir), "written": [str(p) for p in written]})
        return
    names = ", ".join(p.relative_to(out_dir).as_posix() for p in written)
    out.print(f"wrote {len(written)} {fmt} prompt(s) of {task} to {out_dir}: {names}")


COMMANDS = [import_, export]
