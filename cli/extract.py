"""`actstore extract`: activations of a task's splits into a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from actstore import tasks
from actstore.errors import ActstoreError
from actstore.extraction import ExtractOptions, extract as run_extract
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.store import Store

from .common import DataSource, Device, parse_ints, with_data
from .output import out, throughput


def resolve_prompts(store: Store, task: tasks.TaskSpec, prompts: str | None, prompts_from: str | None,
                    seeds: str | None, length: int, hidden: int) -> tuple[PromptSet, str | None]:
    """The prompt set to extract with, and the task to record it under (None: it is already in the store)."""
    if prompts is None:
        source = prompts_from or tasks.source_task(task)
        found = store.prompts(source)
        if found is None:
            raise ActstoreError(
                f"{store.path} holds no prompts for task '{source}': tune it first, or pass --prompts FILE or --prompts random"
            )
        return found, None
    if prompts == "random":
        return PromptSet.random(parse_ints(seeds or "0,1,2"), length, hidden), task.name
    return PromptSet.from_files(prompts.split(","), parse_ints(seeds) if seeds else None), task.name


def extract(
    model: Annotated[str, typer.Option(help="Hugging Face name, registry alias (all-minilm-l6-v2) or local directory")],
    task: Annotated[str, typer.Option(help="a registry task (sst2, qnli, ...) or a name for --data-files")],
    store: Annotated[Path, typer.Option(help="the Zarr store to write (created if absent)")],
    split: Annotated[str, typer.Option(help="comma-separated splits")] = "train,validation",
    prompts: Annotated[Optional[str], typer.Option(help="'random', or .pt/.npy file(s); default: the store's prompts")] = None,
    prompts_from: Annotated[Optional[str], typer.Option(help="use the prompts the store holds for this task")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="seeds of the prompts (random: default 0,1,2)")] = None,
    prompt_length: Annotated[int, typer.Option(help="tokens of a random prompt")] = 100,
    dtype: Annotated[str, typer.Option(help="float16 or float32")] = "float16",
    store_train: Annotated[bool, typer.Option(help="store train activations too (else only the baseline)")] = False,
    batch_size: int = 8,
    block: Annotated[int, typer.Option(help="examples per chunk")] = 32,
    max_length: Annotated[int, typer.Option(help="text tokens at most")] = 128,
    device: Device = None,
    data: DataSource = DataSource(),
) -> None:
    """Extract FFN activations at the prompt positions for every layer, neuron, token, seed and example."""
    options = ExtractOptions(dtype=dtype, max_length=max_length, batch_size=batch_size, block=block, store_train=store_train)
    spec, splits = data.load(task, split)
    lm = load_model(model, device=device)
    target = Store(store, mode="a")
    with target.writing():
        prompt_set, record_under = resolve_prompts(target, spec, prompts, prompts_from, seeds, prompt_length, lm.spec.hidden)
        prompt_set.check_fits(lm.spec, max_length)
        if record_under:
            target.put_prompts(record_under, prompt_set, prompt_set.spec(lm.spec))
        for name, data in splits.items():
            total = len(data) * len(prompt_set.seeds)
            with throughput(f"{task}/{name}", total) as rates:
                done = run_extract(target, lm, spec, data, prompt_set, options, progress=rates.add)
            what = "activations + baseline" if name == "train" and not done.store_acts else "activations"
            out.print(f"{task}/{name}: {done.n_examples} examples × {len(done.seeds)} seeds → {what} in {store} ({rates})")


COMMANDS = [with_data(extract)]
