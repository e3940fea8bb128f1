"""Run a prompted model over a split and store the FFN activations at the prompt positions.

Work is cut into blocks of ``block`` examples (one Zarr chunk row). The model fills one block
while up to ``queue`` earlier blocks are encoded and written by writer threads, so compute overlaps
I/O and memory stays bounded by (queue + 1) blocks whatever the split size. A block is redone
after a crash unless its done marker exists; blocks are batched identically on every run, so a
resumed extraction is bit-identical to an uninterrupted one.

The train split also feeds Eq. 2's baseline as exact int64 fixed-point sums of the float16 values
(``kernels.fixed_point_sum``), one per segment of ``segment`` blocks, each stored whole and marked
done; the baseline is their sum, which no order of summing changes. With ``store_acts=False`` (the default
for train) its activations are never written.

Under a launcher (``launch.Shard``) every process takes its share of whole units, dev blocks and train
segments, round robin; each unit's bytes are the same whoever computes it, so the store is bit-identical to a
single process's, and the last rank to finish writes the baselines and marks the extraction complete.

T5 is captured in both stacks in the same forward pass: the encoder at the prompt tokens, the decoder
at the first decoding step (where the label word is scored); each stack is an extraction of its own
(``ExtractionSpec.stack``), and a block counts as done when both hold it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import torch

from . import kernels
from .baselines import SUM_DTYPE, baseline_from_sum, block_sum, matching_baseline, stack_specs
from .checks import check_positive, existing_store
from .errors import ActstoreError
from .launch import Shard, wait_until
from .models import PromptedModel
from .prompts import PromptSet
from .specs import ExtractionSpec, differences, layout_mismatch
from .store import Store, StoreLocation
from .store.paths import extraction_path
from .store.writer import Examples, open_writer
from .tasks import Split, TaskSpec, check_examples, source_task

#: the activation dtypes a store can hold
DTYPES = ("float16", "float32")
#: what a dev extraction keeps: the values, their above-baseline bits (1/16 of float16's size), or both
KEEPS = ("acts", "bits", "both")

#: progress(examples, bytes): called as blocks finish (examples skipped on resume count too)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExtractOptions:
    """How to run an extraction; ``dtype``, ``max_length`` and ``block`` also define what is stored."""

    dtype: str = "float16"
    max_length: int = 128
    batch_size: int = 8
    block: int = 32
    store_train: bool = False
    queue: int = 2
    segment: int = 32
    keep: str = "acts"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ActstoreError(f"dtype must be float16 or float32, not {self.dtype}")
        if self.keep not in KEEPS:
            raise ActstoreError(f"keep must be one of {', '.join(KEEPS)}, not {self.keep}")
        check_positive(
            max_length=self.max_length,
            batch_size=self.batch_size,
            block=self.block,
            queue=self.queue,
            segment=self.segment,
        )
        if self.block % self.batch_size:
            raise ActstoreError(f"block ({self.block}) must be a multiple of batch size ({self.batch_size})")


def plan(
    model: PromptedModel,
    task: TaskSpec,
    split: Split,
    prompts: PromptSet,
    options: ExtractOptions,
    baseline_from: str | None = None,
) -> ExtractionSpec:
    """Check everything that can be checked before any work, and describe what will be stored. Bits compare with
    the train baseline of ``baseline_from`` (default: the task's own; an adversarial task's clean source's)."""
    # train feeds the baseline, dev is ranked
    check_examples(task, split, min_classes=1 if split.name == "train" else 2)
    prompts.check_fits(model.spec, options.max_length)
    model.check_length(options.max_length, len(split.texts[0]))
    keeps = kept(split.name, options)
    return ExtractionSpec(
        task=task.name,
        split=split.name,
        model=model.spec,
        prompt_checksum=prompts.checksum,
        seeds=prompts.seeds,
        n_tokens=prompts.n_tokens,
        n_examples=len(split),
        data_fingerprint=split.fingerprint,
        label_names=tuple(task.label_names),
        label_words=tuple(task.label_words),
        dtype=options.dtype,
        max_length=options.max_length,
        block=options.block,
        **keeps,
        baseline_task=(baseline_from or source_task(task)) if keeps["store_bits"] else "",
        n_text_fields=len(split.texts[0]),
        label_ids=tuple(model.label_ids(task)),
        manifests=True,
    )


def kept(split: str, options: ExtractOptions) -> dict:
    """What an extraction of ``split`` keeps (``ExtractionSpec`` fields): train feeds the baseline, in segments,
    and keeps its values only with ``store_train``; the splits that are ranked keep what ``keep`` says, and moments."""
    dev = split != "train"
    return {
        "store_acts": options.keep != "bits" if dev else options.store_train,
        "store_bits": dev and options.keep != "acts",
        "store_moments": dev,
        "segment": 0 if dev else options.segment,
    }


def prepare(
    path: str | Path | StoreLocation,
    model: PromptedModel,
    task: TaskSpec,
    splits: Mapping[str, Split],
    options: ExtractOptions,
    *,
    prompts: str | None = None,
    prompts_from: str | None = None,
    seeds: Sequence[int] | None = None,
    n_tokens: int = 100,
    baseline_from: str | None = None,
) -> tuple[PromptSet, str | None]:
    """Check an extraction of ``splits`` into the store at ``path`` before the store is opened for writing (a
    rejected run must leave the store as it was and create none): the prompts, every split's plan, and what the
    store already holds. ``prompts``: None (the store's, of ``prompts_from`` or the task's source), ``"random"``
    (``seeds``, ``n_tokens``) or comma-separated files. Returns the prompts and the task to record them under
    (None: they are in the store already)."""
    existing = existing_store(path)
    prompt_set, record_under = _prompts(existing, path, task, prompts, prompts_from, seeds, n_tokens, model.spec.hidden)
    prompt_set.check_fits(model.spec, options.max_length)
    if record_under is None and not model.cross_layout:  # the store's prompts: tuned or imported in a layout
        source = prompts_from or source_task(task)
        assert existing is not None  # ``_prompts`` found the prompts in it
        made_for = existing.prompt_spec(source)
        assert made_for is not None
        if why := layout_mismatch(f"prompts of '{source}'", made_for.model, model.spec):
            raise ActstoreError(why)
    if existing is not None and record_under:
        held = existing.prompt_spec(record_under)
        if held is not None and held.checksum != prompt_set.checksum:
            raise ActstoreError(
                f"{path} already holds other prompts for task '{record_under}' ({held.source}, "
                f"{held.checksum}); use another store"
            )
    for split in splits.values():
        planned = plan(model, task, split, prompt_set, options, baseline_from)
        if planned.store_bits and not (planned.baseline_task == task.name and "train" in splits):
            _check_baseline(existing, path, planned, model.cross_layout)
        for spec in stack_specs(planned):
            old = existing.extraction_spec(spec.task, spec.split, spec.stack) if existing else None
            if old is not None and old != spec.resuming(old):
                where = extraction_path(spec.task, spec.split, spec.stack)
                raise ActstoreError(
                    f"{path}/{where} was extracted with different settings "
                    f"({'; '.join(differences(old, spec))}); use another store or the original "
                    "settings"
                )
    return prompt_set, record_under


def _check_baseline(
    store: Store | None, path: str | Path | StoreLocation, dev: ExtractionSpec, cross_layout: bool
) -> list[np.ndarray]:
    """Bits compare with a train baseline that must exist before the first block is written: the baseline of every
    stack (``matching_baseline``)."""
    if store is None or not store.complete(dev.baseline_task, "train"):
        keep = "bits" if not dev.store_acts else "both"
        raise ActstoreError(
            f"--keep {keep} compares {dev.task}/{dev.split} with the train baseline of "
            f"'{dev.baseline_task}', which {path} does not hold complete yet: extract "
            f"{dev.baseline_task} --split train first (or include train in --split), or use --keep "
            "acts"
        )
    return [matching_baseline(store, dev.baseline_task, spec, cross_layout) for spec in stack_specs(dev)]


def _prompts(
    existing: Store | None,
    path: str | Path | StoreLocation,
    task: TaskSpec,
    prompts: str | None,
    prompts_from: str | None,
    seeds: Sequence[int] | None,
    n_tokens: int,
    hidden: int,
) -> tuple[PromptSet, str | None]:
    if prompts is None:
        source = prompts_from or source_task(task)
        found = PromptSet.stored(existing, source) if existing else None
        if found is None:
            raise ActstoreError(
                f"{path} holds no prompts for task '{source}': tune it first, or pass --prompts FILE "
                "or --prompts random"
            )
        return found, None
    if prompts == "random":
        return PromptSet.random(seeds if seeds is not None else (0, 1, 2), n_tokens, hidden), task.name
    return PromptSet.from_files(prompts.split(","), seeds), task.name


def extract(
    store: Store,
    model: PromptedModel,
    task: TaskSpec,
    split: Split,
    prompts: PromptSet,
    options: ExtractOptions = ExtractOptions(),
    progress: Progress | None = None,
    shard: Shard = Shard(),
    baseline_from: str | None = None,
) -> ExtractionSpec:
    """Extract one split into ``store`` (resuming if it was interrupted), or this rank's share of it; returns its
    (encoder) spec."""
    spec = plan(model, task, split, prompts, options, baseline_from)
    specs = stack_specs(spec)
    baselines = None
    if spec.store_bits:
        if shard.sharded:  # the last rank to finish the train split writes the baseline
            wait_until(
                lambda: store.complete(spec.baseline_task, "train"),
                f"the train baseline of '{spec.baseline_task}'",
                shard,
            )
        baselines = _check_baseline(store, store.location, spec, model.cross_layout)
    writers = _writers(store, specs, _examples(model, task, split), shard)
    specs = [w.spec for w in writers]  # as they were begun, when resumed (ExtractionSpec.resuming)
    spec = specs[0]
    runner = _BlockRunner(model, specs, split, model.label_ids(task), options, baselines)
    report = progress or (lambda examples, nbytes: None)
    done = np.logical_and.reduce([w.done() for w in writers])
    with ThreadPoolExecutor(max_workers=options.queue, thread_name_prefix="actstore-writer") as pool:
        queue = _WriteQueue(pool, options.queue)

        def run_block(s: int, b: int, prompt: torch.Tensor) -> list[np.ndarray | None]:
            """Compute a block, and write it unless it is stored already (a train block is recomputed for its
            segment's sum)."""
            stacks, scores, lengths = runner.run(s, b, prompt)
            if not done[s, b]:
                for writer, captured in zip(writers, stacks):
                    queue.submit(
                        lambda w=writer, c=captured: w.write_block(s, b, scores, *runner.finish(s, c), lengths)
                    )
            report(len(scores), sum(c.stored_bytes for c in stacks) if not done[s, b] else 0)
            return [c.acts for c in stacks]

        def store_block(s: int, b: int, prompt: torch.Tensor) -> None:
            """Compute and write a block unless it is stored already."""
            if done[s, b]:
                report(spec.block_examples(b), 0)
            else:
                run_block(s, b, prompt)

        if spec.split == "train":
            _stream_segments(spec, writers, runner, prompts, shard, queue, run_block, store_block)
        else:
            for s, b in _owned(shard, len(spec.seeds), spec.n_blocks):
                store_block(s, b, torch.from_numpy(prompts.vectors[s]))
        queue.drain()
    for writer in writers:
        writer.finish()
    return spec


def owned_examples(spec: ExtractionSpec, shard: Shard = Shard()) -> int:
    """How many examples (times seeds) a rank computes or skips in ``extract``: its progress bar's total."""
    if spec.split == "train":
        return sum(
            spec.block_examples(b)
            for _, g in _owned(shard, len(spec.seeds), spec.n_segments)
            for b in spec.segment_blocks(g)
        )
    return sum(spec.block_examples(b) for _, b in _owned(shard, len(spec.seeds), spec.n_blocks))


def _owned(shard: Shard, n_seeds: int, n_units: int) -> list[tuple[int, int]]:
    """This rank's (seed index, unit) pairs, units numbered seed-major across ranks."""
    return [(s, u) for s in range(n_seeds) for u in range(n_units) if shard.owns(s * n_units + u)]


def _examples(model: PromptedModel, task: TaskSpec, split: Split) -> list[Examples]:
    """What each stack's extraction records of the examples (provenance): labels, source, row ids, texts, and the
    model's hook point per layer of the stack."""
    fields = len(split.texts[0])
    names = task.text_fields if len(task.text_fields) == fields else tuple(f"text{i}" for i in range(fields))
    points = model.hook_points()
    stacks = [points[: model.spec.n_layers], points[model.spec.n_layers :]]
    return [Examples(split.labels, split.source, split.rows, split.texts, tuple(names), tuple(p)) for p in stacks if p]


def _writers(store: Store, specs: list[ExtractionSpec], examples: list[Examples], shard: Shard) -> list:
    """The extraction writers; rank 0 creates the groups, the other ranks wait for them to appear."""

    def created(s: ExtractionSpec) -> bool:
        old = store.extraction_spec(s.task, s.split, s.stack)
        return old is not None and s.resuming(old) == old

    if shard.rank:
        wait_until(
            lambda: all(map(created, specs)), f"rank 0 to create extractions/{specs[0].task}/{specs[0].split}", shard
        )
    return [open_writer(store, s, e) for s, e in zip(specs, examples)]


def _stream_segments(
    spec: ExtractionSpec,
    writers: list,
    runner: _BlockRunner,
    prompts: PromptSet,
    shard: Shard,
    queue: _WriteQueue,
    run_block: Callable,
    store_block: Callable,
) -> None:
    """The train split: this rank's segments, each summed over its blocks and stored whole once its blocks are;
    then the baseline of every seed whose segments are all in (the last rank to finish writes them)."""
    seg_done = np.logical_and.reduce([w.segments_done() for w in writers])
    computed = False
    for s, g in _owned(shard, len(spec.seeds), spec.n_segments):
        prompt = torch.from_numpy(prompts.vectors[s])
        if seg_done[s, g]:  # summed: only blocks whose stored activations were lost (verify --repair) are redone
            for b in spec.segment_blocks(g):
                store_block(s, b, prompt)
            continue
        totals = [np.zeros(shape, SUM_DTYPE[spec.dtype]) for shape in runner.block_shapes]
        for b in spec.segment_blocks(g):
            for total, acts in zip(totals, run_block(s, b, prompt)):
                total += block_sum(acts)
        queue.drain()  # the segment's blocks are stored before its sum is marked done
        for writer, total in zip(writers, totals):
            writer.put_segment(s, g, total)
        computed = True
    for writer in writers:
        if computed or not writer.is_complete():
            for s in map(int, np.nonzero(writer.segments_done().all(axis=1))[0]):
                writer.put_baseline(s, baseline_from_sum(writer.segment_total(s), spec.n_examples))


@dataclass
class _Captured:
    """One stack's share of a block: its values on the host (None when only bits leave the device), and, when made
    on the device, its bits and moments (else the writer thread makes them from the values)."""

    stack: int
    acts: np.ndarray | None
    bits: np.ndarray | None = None
    moments: np.ndarray | None = None
    stored_bytes: int = 0


class _BlockRunner:
    """Runs the model over one block of examples, capturing every FFN: the encoder's at the prompt tokens,
    T5's decoder's at the first decoding step.

    A dev split's bits ``1[a > baseline]`` and moments are made from the values as the dtype stores them. On a
    CPU the values are captured and a numba kernel makes both in one pass (in the writer thread); on a GPU
    (``on_device``) torch makes them where the values are, so only bits and moments cross to the host (and the
    values only when they are kept). Both ways give the same bits (the float16 moments are exact integers).
    """

    def __init__(
        self,
        model: PromptedModel,
        specs: list[ExtractionSpec],
        split: Split,
        word_ids: list[int],
        options: ExtractOptions,
        baselines: list[np.ndarray] | None = None,
        on_device: bool | None = None,
    ):
        self.model, self.specs, self.spec, self.split, self.word_ids = model, specs, specs[0], split, word_ids
        self.options, self.baselines = options, baselines
        self.block_shapes = [(s.n_layers, s.n_positions, s.model.n_neurons) for s in specs]
        self.on_device = (model.device.type != "cpu") if on_device is None else on_device
        self.on_device &= self.spec.store_moments  # nothing to make on a train split
        self._thresholds: dict[tuple[int, int], Any] = {}

    def thresholds(self, seed_index: int, stack: int) -> Any:
        """What the bits of one seed and stack compare with: numba's ``thresholds_for`` on the host, the baseline
        floored to the dtype as a tensor on the device (cached: one per seed and stack)."""
        key = (seed_index, stack)
        if key not in self._thresholds:
            assert self.baselines is not None  # given whenever bits are stored (``extract``)
            baseline = self.baselines[stack][seed_index]
            self._thresholds[key] = (
                torch.from_numpy(kernels.floor_to(baseline, self.spec.dtype)).to(self.model.device)
                if self.on_device
                else kernels.thresholds_for(baseline, self.spec.dtype)
            )
        return self._thresholds[key]

    def finish(self, seed_index: int, captured: _Captured) -> tuple:
        """(acts to store or None, bits or None, moments or None) of one stack's block: made here from the values
        when the device did not make them (called in a writer thread: numba releases the GIL)."""
        spec = self.specs[captured.stack]
        bits, moments = captured.bits, captured.moments
        numba.set_num_threads(1)  # this writer thread's kernels: the model's threads have the cores
        if spec.store_moments and moments is None:
            assert captured.acts is not None  # not made on the device: the values crossed to the host
            bits, moments = kernels.bits_and_moments(
                captured.acts, self.thresholds(seed_index, captured.stack) if spec.store_bits else None
            )
        return (captured.acts if spec.store_acts else None), bits, moments

    @torch.inference_mode()
    def run(self, seed_index: int, b: int, prompt: torch.Tensor) -> tuple[list[_Captured], np.ndarray, np.ndarray]:
        """(what each stack captured, label-word scores, each example's token count) of block ``b``."""
        lo, n = b * self.spec.block, self.spec.block_examples(b)
        host = [not self.on_device or s.store_acts for s in self.specs]  # the values cross to the host
        stacks = [
            _Captured(i, _layer_major(n, shape, self.spec.dtype) if h else None)
            for i, (shape, h) in enumerate(zip(self.block_shapes, host))
        ]
        targets = [torch.from_numpy(c.acts) if c.acts is not None else None for c in stacks]
        made = [
            _DeviceBlock(
                n, shape, self.spec, self.thresholds(seed_index, i) if spec.store_bits else None, self.model.device
            )
            if self.on_device
            else None
            for i, (shape, spec) in enumerate(zip(self.block_shapes, self.specs))
        ]
        scores = np.empty((n, len(self.word_ids)), dtype=np.float32)
        lengths = np.empty(n, np.int32)  # the text tokens the model read (special tokens included, prompt not)
        n_encoder = self.spec.model.n_layers
        # the prompt positions in the sequence the model runs (the end of it in the causal layout); T5's decoder: its
        # first decoding step
        where = [
            self.model.layout.prompt_slice(self.block_shapes[0][1]),
            *(slice(0, shape[1]) for shape in self.block_shapes[1:]),
        ]
        for r in range(0, n, self.options.batch_size):
            rows = slice(r, min(r + self.options.batch_size, n))
            batch = self.model.encode(
                self.split.texts[lo + rows.start : lo + rows.stop], self.options.max_length, self.split.task
            )
            lengths[rows] = batch["attention_mask"].sum(1).numpy()

            def capture(layer: int, act: torch.Tensor, rows: slice = rows) -> None:
                stack, index = (0, layer) if layer < n_encoder else (1, layer - n_encoder)
                values = act[:, where[stack]]
                if (target := targets[stack]) is not None:
                    target[rows, index].copy_(values)
                if (device_block := made[stack]) is not None:
                    device_block.add(rows, index, values)

            with self.model.ffn_hooks(capture):
                scores[rows] = self.model.label_logits(batch, prompt, self.word_ids).float().cpu().numpy()
        for first, captured, device_block, spec in zip((0, n_encoder), stacks, made, self.specs):
            if device_block is not None:
                captured.bits, captured.moments, finite = device_block.result()
                if not finite.all():
                    raise ActstoreError(_overflow_message(finite, lo, first, self.spec))
            acts = captured.acts
            if acts is not None and (
                kernels.has_nonfinite(acts) if self.spec.dtype == "float16" else not np.isfinite(acts).all()
            ):
                raise ActstoreError(_overflow_message(acts, lo, first, self.spec))
            values = n * spec.n_layers * spec.n_positions
            captured.stored_bytes = (
                values * spec.model.n_neurons * np.dtype(spec.dtype).itemsize if spec.store_acts else 0
            ) + (values * kernels.packed_size(spec.model.n_neurons) if spec.store_bits else 0)
        return stacks, scores, lengths


def _layer_major(n: int, shape: tuple[int, int, int], dtype: str) -> np.ndarray:
    """An empty block (example, layer, token, neuron) laid out layer by layer in memory: each layer's storage chunk
    is one contiguous piece, so zarr and the kernels take it without a copy."""
    n_layers, n_tokens, n_neurons = shape
    return np.empty((n_layers, n, n_tokens, n_neurons), dtype).transpose(1, 0, 2, 3)


class _DeviceBlock:
    """One stack's bits and moments of a block made with torch where the activations are (a GPU; the same code
    runs on a CPU, where the tests compare it with the numba kernel)."""

    def __init__(
        self,
        n: int,
        shape: tuple[int, int, int],
        spec: ExtractionSpec,
        floor: torch.Tensor | None,
        device: torch.device,
    ) -> None:
        n_layers, n_tokens, n_neurons = shape
        self.dtype = getattr(torch, spec.dtype)
        self.floor, self.n_neurons = floor, n_neurons
        self.packed = kernels.packed_size(n_neurons)
        self.bits = (
            torch.zeros((n, n_layers, n_tokens, self.packed), dtype=torch.uint8, device=device)
            if floor is not None
            else None
        )
        exact = spec.dtype == "float16"
        self.moments = torch.zeros(
            (kernels.MOMENT_SLOTS, n_layers, n_neurons), device=device, dtype=torch.int64 if exact else torch.float64
        )
        self.finite = torch.ones((n_layers, n_neurons), dtype=torch.bool, device=device)  # no sync per batch
        self.shifts = torch.arange(8, dtype=torch.uint8, device=device)

    def add(self, rows: slice, layer: int, act: torch.Tensor) -> None:
        values = act.to(self.finite.device, self.dtype)  # --device-map: the layer may be on another GPU
        self.finite[layer] &= torch.isfinite(values).all(0).all(0)
        if self.floor is not None and self.bits is not None:  # the bits are made exactly when a floor is given
            above = (values > self.floor[layer]).to(torch.uint8)
            above = torch.nn.functional.pad(above, (0, self.packed * 8 - self.n_neurons))
            shifted = above.view(*above.shape[:-1], self.packed, 8) << self.shifts
            self.bits[rows, layer] = shifted.sum(-1, dtype=torch.uint8)
        if self.moments.dtype == torch.int64:  # m = a·2^24 exactly; |m| = hi·2^20 + lo (kernels.moment_stats)
            m = (values.double() * kernels.FIXED_POINT_SCALE).long()
            a = m.abs()
            hi, lo = a >> 20, a & ((1 << 20) - 1)
            for slot, term in enumerate((m, hi * hi, hi * lo, lo * lo)):
                self.moments[slot, layer] += term.sum((0, 1))
        else:
            wide = values.double()
            self.moments[0, layer] += wide.sum((0, 1))
            self.moments[1, layer] += (wide * wide).sum((0, 1))

    def result(self) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """(bits or None, moments, (layer, neuron) whether every value was finite)."""
        bits = None if self.bits is None else self.bits.cpu().numpy()
        return bits, self.moments.cpu().numpy(), self.finite.cpu().numpy()


def _overflow_message(found: np.ndarray, lo: int, first_layer: int, spec: ExtractionSpec) -> str:
    """Where a block overflowed, in one line: the first layer and neuron not finite, with the example and token
    where the values are on the host (``found`` (example, layer, token, neuron)); made on a device and not copied,
    ``found`` is (layer, neuron) whether finite, and the example is the block's first. A value beyond float16's
    range is never stored as inf: the block is refused."""
    if found.dtype == bool:
        layer, neuron = np.argwhere(~found)[0]
        where = f"at layer {first_layer + int(layer)}, neuron {int(neuron)}, in the block of examples from {lo}"
    else:
        example, layer, token, neuron = np.argwhere(~np.isfinite(found))[0]
        where = (
            f"at layer {first_layer + int(layer)}, neuron {int(neuron)} (example {lo + int(example)}, prompt "
            f"token {int(token)})"
        )
    if spec.model.dtype == "float16":
        hint = ": the model itself overflows in float16; re-run with --model-dtype bfloat16 or float32 into a new store"
    elif spec.dtype == "float16":
        hint = " (float16 holds at most 65504): re-run with --dtype float32 into a new store"
    else:
        hint = ""
    return f"activation overflow {where}{hint}; nothing of this block was stored"


class _WriteQueue:
    """At most ``depth`` blocks in flight; a failed write stops the extraction with its error."""

    def __init__(self, pool: ThreadPoolExecutor, depth: int) -> None:
        self.pool, self.slots = pool, threading.Semaphore(depth)
        self.pending: list[Future[None]] = []

    def submit(self, fn: Callable[..., None], *args: object) -> None:
        self.slots.acquire()
        future: Future = self.pool.submit(fn, *args)
        future.add_done_callback(lambda _: self.slots.release())
        self.pending.append(future)
        self._raise_failures(wait=False)

    def drain(self) -> None:
        self._raise_failures(wait=True)

    def _raise_failures(self, wait: bool) -> None:
        still = []
        for future in self.pending:
            if wait or future.done():
                future.result()
            else:
                still.append(future)
        self.pending = still
