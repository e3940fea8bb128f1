"""Writes one extraction block by block, crash-safely: a block's done marker only after its chunks, and the manifest
that records their CRC32Cs (``ledger``), are durable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from ..errors import ActstoreError
from ..specs import ExtractionSpec, differences, from_attrs, to_attrs
from .attrs import is_complete, now, put_attrs, stamp
from .integrity import stored_trailer, writable
from .layout import coordinates, create_arrays, extraction_layout, manifest_coords, unit_chunks
from .members import array_in, json_object, values_in
from .paths import extraction_path
from .store import Store


@dataclass(frozen=True)
class Examples:
    """What an extraction records of its examples besides their activations: labels, where they came from (the
    source, each example's row id in it, its texts) and where in the model the activations were read."""

    labels: np.ndarray[Any, Any]
    source: str
    rows: np.ndarray[Any, Any]
    texts: tuple[tuple[str, ...], ...] = ()
    text_fields: tuple[str, ...] = ()
    hook_points: tuple[str, ...] = ()

    def write(self, group: zarr.Group, spec: ExtractionSpec) -> None:
        """The arrays of ``layout.example_arrays``: labels, and with provenance row ids and texts."""
        writable(array_in(group, "label"))[...] = self.labels
        if spec.n_text_fields:
            writable(array_in(group, "example"))[...] = self.rows
            texts = np.empty((len(self.texts), spec.n_text_fields), dtype=object)
            texts[...] = self.texts
            writable(array_in(group, "text"))[...] = texts

    def attrs(self) -> dict[str, Any]:
        return {
            "data_source": self.source,
            "text_fields": list(self.text_fields),
            "hook_points": list(self.hook_points),
        }


class ExtractionWriter:
    """Writes one extraction block by block; safe to call ``write_block`` from writer threads."""

    def __init__(self, store: Store, group: zarr.Group, spec: ExtractionSpec) -> None:
        self.store, self.group, self.spec = store, group, spec
        self._arrays: dict[str, zarr.Array[Any]] = {}

    def done(self) -> np.ndarray[Any, Any]:
        """(seed, block) bool: which blocks are safely stored."""
        return values_in(self.group, "done")

    def write_block(
        self,
        seed_index: int,
        block: int,
        scores: np.ndarray[Any, Any],
        acts: np.ndarray[Any, Any] | None = None,
        bits: np.ndarray[Any, Any] | None = None,
        moments: np.ndarray[Any, Any] | None = None,
        lengths: np.ndarray[Any, Any] | None = None,
    ) -> None:
        """Store one block's scores and what the spec keeps of it (values, bits, moments, the examples' token counts),
        make them durable, then mark the block done."""
        lo = block * self.spec.block
        hi = lo + scores.shape[0]
        if self.spec.n_text_fields:  # the same for every seed: whichever writes it, the bytes are the same
            if lengths is None:  # what zarr would raise writing None
                raise TypeError("an extraction that keeps provenance writes each block's token counts (lengths)")
            self._array("length")[lo:hi] = lengths
        for name, values in (("acts", acts), ("bits", bits)):
            if values is not None:
                self._array(name)[seed_index, lo:hi] = values
        if moments is not None:
            self._array("moments")[seed_index, block] = moments
        self._array("scores")[seed_index, lo:hi] = scores
        self._array("prediction")[seed_index, lo:hi] = scores.argmax(axis=1).astype(np.int16)
        self._durable_unit("block_crc", seed_index, block)
        self._array("done")[seed_index, block] = True

    def _array(self, name: str) -> zarr.Array[Any]:
        """An array of the group, opened once (each open reads and parses its zarr.json)."""
        if name not in self._arrays:
            self._arrays[name] = writable(array_in(self.group, name))
        return self._arrays[name]

    def _key(self, name: str, coords: tuple[int, ...]) -> str:
        array = self._array(name)
        return f"{array.path}/{array.metadata.encode_chunk_key(coords)}"

    def _durable_unit(self, manifest: str, seed_index: int, unit: int = 0) -> None:
        """Record the CRC32C of every chunk a unit just wrote in its manifest, then make them all durable where the
        store lives (fsync on a disk, all at once; an object PUT already is): before the unit's marker. A group from
        before manifests (``ExtractionSpec.manifests``) gets none."""
        keys = [self._key(name, coords) for name, coords in unit_chunks(self.spec, manifest, seed_index, unit)]
        if self.spec.manifests:
            crcs = self.store.zstore.take(keys)
            coords = manifest_coords(manifest, seed_index, unit)
            # a chunk this process did not write (a concurrent launch's same bytes): as stored; one stored by nobody
            # (None) fails the conversion, as zarr's own would
            recorded = [
                crc if crc is not None else stored_trailer(self.store.zstore, key) for key, crc in zip(keys, crcs)
            ]
            self._array(manifest)[coords[:-1]] = np.array(recorded, np.uint32)
            keys.append(self._key(manifest, coords))
        self.store.backend.make_durable(keys)

    # ---- the train split's streamed baseline (Eq. 2), as exact sums of segments of blocks

    def segments_done(self) -> np.ndarray[Any, Any]:
        """(seed, segment) bool: which segments' sums are safely stored."""
        return values_in(self.group, "segment_done")

    def put_segment(self, seed_index: int, segment: int, total: np.ndarray[Any, Any]) -> None:
        """Store a segment's exact sum (layer, token, neuron), make it durable, then mark the segment done. Its
        bytes are the same whoever computes it, so ranks, resumed runs and concurrent launches agree."""
        self._array("baseline_parts")[seed_index, segment] = total
        self._durable_unit("segment_crc", seed_index, segment)
        self._array("segment_done")[seed_index, segment] = True

    def segment_total(self, seed_index: int) -> np.ndarray[Any, Any]:
        """Σ over every segment of a seed, layer by layer (memory stays at one segment's sum per layer)."""
        parts = array_in(self.group, "baseline_parts")
        return np.stack([np.asarray(parts[seed_index, :, layer]).sum(axis=0) for layer in range(self.spec.n_layers)])

    def put_baseline(self, seed_index: int, baseline: np.ndarray[Any, Any]) -> None:
        self._array("baseline")[seed_index] = baseline
        self._durable_unit("baseline_crc", seed_index)

    def _update_attrs(self, **changes: Any) -> None:
        attrs: dict[str, Any] = dict(self.group.attrs)
        attrs.update(changes)
        attrs["stamp"] = {**attrs["stamp"], "updated": now()}
        put_attrs(self.group, attrs)

    def is_complete(self) -> bool:
        return is_complete(self.group)

    def finish(self) -> bool:
        """Mark the extraction complete if every block (and, for train, every segment, so every seed's baseline)
        is in; any rank may call it, the last one to finish its share completes the extraction."""
        complete = bool(self.done().all())
        if self.spec.split == "train":
            complete &= bool(self.segments_done().all())
        if complete:
            self._update_attrs(stamp={**json_object(self.group, "stamp"), "state": "complete"})
        return complete


def open_writer(store: Store, spec: ExtractionSpec, examples: Examples) -> ExtractionWriter:
    """Open an extraction for (re)writing: a new one is created, a matching one resumes (as it was begun: see
    ``ExtractionSpec.resuming``), another is refused."""
    path = extraction_path(spec.task, spec.split, spec.stack)
    group = store._group(path, "extraction")
    if group is not None:
        old = from_attrs(ExtractionSpec, json_object(group, "spec"))
        if old != spec.resuming(old):
            raise ActstoreError(
                f"{store.location}/{path} was extracted with different settings "
                f"({'; '.join(differences(old, spec))}); use another store or the original settings"
            )
        examples.write(group, old)  # the same data (its fingerprint is in the spec): heals a damaged chunk of it
        return ExtractionWriter(store, group, old)
    group = store.root.require_group(path)
    create_arrays(group, extraction_layout(spec))
    for name, values in coordinates(spec).items():
        writable(array_in(group, name))[...] = values
    examples.write(group, spec)
    put_attrs(group, {"spec": to_attrs(spec), "stamp": stamp("in_progress"), **examples.attrs()})
    return ExtractionWriter(store, group, spec)
