"""`actstore extract`: activations of a task's splits into a store."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from actstore.launch import Shard

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
from .output import closing_rate, out, print_json, throughput

#: actstore.extraction.DTYPES, spelled out so that --help does not import torch (tests/test_conventions.py: equal)
Dtype = Literal["float16", "float32"]
#: actstore.extraction.KEEPS, likewise
Keep = Literal["acts", "bits", "both"]


def extract(
    model: Annotated[str, typer.Option(help="Hugging Face name, registry alias (all-minilm-l6-v2) or local directory")],
    task: Annotated[str, typer.Option(help="a registry task (sst2, qnli, ...) or a name for --data-files")],
    store: Annotated[
        StoreLocation,
        typer.Option(help="the Zarr store to write (created if absent): a path or a URL such as s3://bucket/prefix"),
    ],
    split: Annotated[str, typer.Option(help="comma-separated splits")] = "train,validation",
    prompts: Annotated[
        str | None, typer.Option(help="'random', or .pt/.npy file(s); default: the store's prompts")
    ] = None,
    prompts_from: Annotated[str | None, typer.Option(help="use the prompts the store holds for this task")] = None,
    seeds: Annotated[str | None, typer.Option(help="seeds of the prompts (random: default 0,1,2)")] = None,
    prompt_length: Annotated[int, typer.Option(help="tokens of a random prompt")] = 100,
    dtype: Annotated[
        Dtype,
        typer.Option(
            help="what the activations are stored in: float16 (a value beyond its range "
            "stops the run, naming layer and neuron) or float32"
        ),
    ] = "float16",
    store_train: Annotated[bool, typer.Option(help="store train activations too (else only the baseline)")] = False,
    keep: Annotated[
        Keep,
        typer.Option(
            help="what a dev split keeps: acts (the values), bits (1[a > baseline], a 16th "
            "of float16's size: all the rankings and analyses need) or both"
        ),
    ] = "acts",
    baseline_from: Annotated[
        str | None,
        typer.Option(
            help="--keep bits|both: whose train baseline the bits compare "
            "with (default: the task's own; an adversarial task's clean "
            "task)"
        ),
    ] = None,
    batch_size: BatchSize = 8,
    block: Annotated[int, typer.Option(min=1, help="examples per chunk (a multiple of --batch-size)")] = 32,
    max_length: MaxLength = 128,
    segment: Annotated[
        int, typer.Option(min=1, help="train: blocks per baseline segment, the unit of resume and of sharding")
    ] = 32,
    layout: Layout = "pt",
    cross_layout: CrossLayout = False,
    device: Device = None,
    model_dtype: ModelDtype = None,
    device_map: DeviceMap = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a line per split")] = False,
    data: DataSource = DataSource(),
) -> None:
    """Extract FFN activations at the prompt positions for every layer, neuron, token, seed and example."""
    from actstore.extraction import ExtractOptions, extract as run_extract, owned_examples, plan, prepare
    from actstore.models import load_model
    from actstore.store import Store

    options = ExtractOptions(
        dtype=dtype,
        max_length=max_length,
        batch_size=batch_size,
        block=block,
        store_train=store_train,
        segment=segment,
        keep=keep,
    )
    shard = Shard.from_env()
    spec, splits = data.load(task, split)
    lm = load_model(
        model, layout=layout, cross_layout=cross_layout, **placement(device, model_dtype, device_map, shard)
    )
    prompt_set, record_under = prepare(
        store,
        lm,
        spec,
        splits,
        options,
        prompts=prompts,
        prompts_from=prompts_from,
        seeds=parse_seeds(seeds) if seeds is not None else None,
        n_tokens=prompt_length,
        baseline_from=baseline_from,
    )
    target = Store(store, mode="a")
    done_splits = []
    with target.writing(shared=shard.sharded):
        if record_under and shard.rank == 0:  # the other ranks wait for rank 0's extraction groups
            target.put_prompts(record_under, prompt_set.vectors, prompt_set.spec(lm.spec))
        for name, examples in sorted(splits.items(), key=lambda item: item[0] != "train"):  # the baseline first
            planned = plan(lm, spec, examples, prompt_set, options, baseline_from)
            rank = f" (rank {shard.rank} of {shard.world})" if shard.sharded else ""
            was_complete = target.complete(task, name)  # then the run below only checks that the settings match
            with throughput(f"{task}/{name}{rank}", owned_examples(planned, shard)) as rates:
                done = run_extract(
                    target,
                    lm,
                    spec,
                    examples,
                    prompt_set,
                    options,
                    progress=rates.add,
                    shard=shard,
                    baseline_from=baseline_from,
                )
            what = _stored(done)
            done_splits.append(
                {
                    "split": name,
                    "n_examples": done.n_examples,
                    "seeds": list(done.seeds),
                    "stored": what,
                    "already_complete": was_complete,
                    "examples_per_s": None if was_complete else rates.examples_per_s,
                }
            )
            if not as_json:
                out.print(
                    f"{task}/{name}{rank}: {done.n_examples} examples × {len(done.seeds)} seeds → {what} in "
                    f"{store} ({closing_rate(rates, was_complete)})"
                )
    if as_json:
        print_json({"task": task, "store": str(store), "splits": done_splits})


def _stored(spec) -> str:
    """What an extraction kept, in words."""
    if spec.split == "train":
        return "activations + baseline" if spec.store_acts else "baseline"
    kept = ["activations"] * spec.store_acts + [f"bits (vs. {spec.baseline_task}'s baseline)"] * spec.store_bits
    return " + ".join(kept)


COMMANDS = [with_data(extract)]
