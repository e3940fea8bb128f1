"""`actstore prompts import|export`: released prompts into a store, and a store's prompts out to files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from actstore.errors import ActstoreError
from actstore.prompts import FORMATS, PromptSet, export_prompts

from .common import StoreLocation, parse_seeds
from .output import out, print_json

GROUP = "prompts"


def import_(
    files: Annotated[list[Path], typer.Argument(help=".pt/.npy/.safetensors files or PEFT checkpoint folders, one per seed "
                                                     "(or one [seeds, tokens, hidden] array)")],
    task: Annotated[str, typer.Option(help="the task the prompts were trained on")],
    store: Annotated[StoreLocation, typer.Option(help="the store to add them to")],
    model: Annotated[str, typer.Option(help="the model they were trained for")],
    seeds: Annotated[Optional[str], typer.Option(help="seed of each prompt (default 0, 1, ...)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a line")] = False,
) -> None:
    """Import released prompts (Prompt-Transferability / Robust-Neurons .pt, PEFT prompt tuning) as a task's prompts."""
    from actstore.models import load_model
    from actstore.store import Store

    prompts = PromptSet.from_files(files, parse_seeds(seeds) if seeds is not None else None)
    lm = load_model(model, device="cpu")
    prompts.check_fits(lm.spec, 1)
    target = Store(store, mode="a")
    with target.writing():
        target.put_prompts(task, prompts, prompts.spec(lm.spec))
    if as_json:
        print_json({"task": task, "store": str(store), "seeds": list(prompts.seeds), "n_tokens": prompts.n_tokens,
                    "source": prompts.source})
        return
    out.print(f"prompts/{task}: {len(prompts.seeds)} seeds × {prompts.n_tokens} tokens from {prompts.source} in {store}")


def export(
    task: Annotated[str, typer.Option(help="whose prompts")],
    store: Annotated[StoreLocation, typer.Option(help="the store holding them")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder to write")],
    fmt: Annotated[Literal[FORMATS], typer.Option("--format", help=f"one of {', '.join(FORMATS)}")] = "pt",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a line")] = False,
) -> None:
    """Write a task's prompts as one file (pt: a [tokens, hidden] tensor; npy: the same array) or PEFT checkpoint
    folder per seed."""
    from actstore.models import hub_id
    from actstore.store import open_store

    source = open_store(store)
    prompts = source.prompts(task)
    if prompts is None:
        raise ActstoreError(f"{store} holds no prompts for task '{task}'")
    written = export_prompts(prompts, out_dir, fmt, base_model=hub_id(source.prompt_spec(task).model.name))
    if as_json:
        print_json({"task": task, "format": fmt, "out": str(out_dir), "written": [str(p) for p in written]})
        return
    out.print(f"wrote {len(written)} {fmt} prompt(s) of {task} to {out_dir}: {', '.join(p.name for p in written)}")


COMMANDS = [import_, export]
