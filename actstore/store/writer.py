"""Writes one extraction block by block, crash-safely: a block's done marker only after its chunks are durable."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import zarr

from ..specs import ExtractionSpec

from .attrs import now, put_attrs

if TYPE_CHECKING:
    from .store import Store


class ExtractionWriter:
    """Writes one extraction block by block; safe to call ``write_block`` from writer threads."""

    def __init__(self, store: Store, group: zarr.Group, spec: ExtractionSpec) -> None:
        self.store, self.group, self.spec = store, group, spec
        self.created = group.attrs["stamp"]["created"]

    def done(self) -> np.ndarray:
        """(seed, block) bool: which blocks are safely stored."""
        return np.asarray(self.group["done"][...])

    def write_block(self, seed_index: int, block: int, acts: np.ndarray | None, scores: np.ndarray) -> None:
        """Store one block's activations and scores, make them durable, then mark the block done."""
        lo = block * self.spec.block
        hi = lo + scores.shape[0]
        written = []
        if acts is not None and self.spec.store_acts:
            self.group["acts"][seed_index, lo:hi] = acts
            written += [("acts", (seed_index, block, layer, 0, 0)) for layer in range(self.spec.n_layers)]
        self.group["scores"][seed_index, lo:hi] = scores
        self.group["prediction"][seed_index, lo:hi] = scores.argmax(axis=1).astype(np.int16)
        written += [("scores", (seed_index, block, 0)), ("prediction", (seed_index, block))]
        for name, coords in written:
            self._fsync(name, coords)
        self.group["done"][seed_index, block] = True

    def _fsync(self, name: str, coords: tuple[int, ...]) -> None:
        array = self.group[name]
        fd = os.open(self.store.path / array.path / array.metadata.encode_chunk_key(coords), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # ---- the train split's streamed baseline (Eq. 2), checkpointed in two slots

    def stream_progress(self, seed: int) -> tuple[int, int]:
        """(examples already summed, slot holding that sum) for one seed."""
        entry = self.group.attrs.get("baseline_progress", {}).get(str(seed))
        return (entry["examples"], entry["slot"]) if entry else (0, 1)

    def load_sum(self, seed_index: int, slot: int) -> np.ndarray:
        return np.asarray(self.group["baseline_sum"][slot, seed_index])

    def checkpoint_sum(self, seed_index: int, total: np.ndarray, examples: int) -> None:
        """Write the running sum into the slot not in use, then flip the pointer in one atomic attrs write."""
        seed = self.spec.seeds[seed_index]
        _, slot = self.stream_progress(seed)
        free = 1 - slot
        self.group["baseline_sum"][free, seed_index] = total
        for layer in range(self.spec.n_layers):
            self._fsync("baseline_sum", (free, seed_index, layer, 0, 0))
        progress = dict(self.group.attrs.get("baseline_progress", {}))
        progress[str(seed)] = {"examples": examples, "slot": free}
        self._update_attrs(baseline_progress=progress)

    def put_baseline(self, seed_index: int, baseline: np.ndarray) -> None:
        self.group["baseline"][seed_index] = baseline

    def _update_attrs(self, **changes: object) -> None:
        attrs = dict(self.group.attrs)
        attrs.update(changes)
        attrs["stamp"] = {**attrs["stamp"], "updated": now()}
        put_attrs(self.group, attrs)

    def finish(self) -> bool:
        """Mark the extraction complete if every block (and, for train, every seed's baseline) is in."""
        complete = bool(self.done().all())
        if self.spec.split == "train":
            complete &= all(self.stream_progress(s)[0] == self.spec.n_examples for s in self.spec.seeds)
        if complete:
            self._update_attrs(stamp={**self.group.attrs["stamp"], "state": "complete"})
        return complete
