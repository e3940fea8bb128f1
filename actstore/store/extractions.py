"""Reading extractions: one split's activations, bits and baseline as lazy xarray objects, or as chunk readers
for the kernels, and the one-line errors when an extraction is missing or unfinished."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from ..errors import ActstoreError
from ..specs import STACKS, TOKEN0, ExtractionSpec, from_attrs, to_attrs
from .attrs import is_complete
from .handle import StoreBase
from .integrity import MANIFESTS
from .members import array_in, json_object, values_in
from .paths import EXTRACTIONS, extraction_path
from .readers import ExtractionReader

if TYPE_CHECKING:  # imported where used: `actstore info` and `--help` need neither xarray nor dask nor numba
    import dask.array as da
    import xarray as xr


class ExtractionsMixin(StoreBase):
    """``Store``'s extractions: what was extracted, and each split read lazily or chunk by chunk."""

    def tasks(self) -> dict[str, list[str]]:
        """Extracted splits per task."""
        return {task: self._names(f"{EXTRACTIONS}/{task}") for task in self._names(EXTRACTIONS)}

    # ---- extractions

    def extraction_spec(self, task: str, split: str, stack: str = "encoder") -> ExtractionSpec | None:
        group = self._group(extraction_path(task, split, stack), "extraction")
        return None if group is None else from_attrs(ExtractionSpec, json_object(group, "spec"))

    def complete(self, task: str, split: str) -> bool:
        """Whether every stack of an extraction is complete (every block stored; for train, every baseline)."""
        groups = [g for stack in STACKS if (g := self._group(extraction_path(task, split, stack), "extraction"))]
        return bool(groups) and all(map(is_complete, groups))

    def stacks(self, task: str, split: str) -> list[str]:
        """The stacks extracted for a split: ``["encoder"]``, or T5's ``["encoder", "decoder"]``."""
        return [stack for stack in STACKS if self.extraction_spec(task, split, stack) is not None]

    def extraction(
        self,
        task: str,
        split: str = "validation",
        *,
        stack: str = "encoder",
        complete_only: bool = True,
        blocks_per_chunk: int = 1,
    ) -> xr.Dataset:
        """The activations of one split as a lazy Dataset: acts (seed, example, layer, token, neuron), label,
        prediction, scores (``complete_only=False``: blocks not extracted yet read as NaN / -1, ``complete`` says
        which). T5's decoder activations (``stack="decoder"``) have one ``token``, the first decoding step, and their
        layers numbered after the encoder's. A dask chunk of ``acts`` spans ``blocks_per_chunk`` storage chunks along
        ``example``, read by one task (more work per task, no data moved between dask workers)."""
        import dask.array as da
        import xarray as xr

        path = extraction_path(task, split, stack)
        group = self._group(path, "extraction")
        if group is None:
            raise self._no_extraction(task, split, stack)
        done = values_in(group, "done")
        if complete_only:
            _refuse_unfinished(done, task, split)
        spec = from_attrs(ExtractionSpec, json_object(group, "spec"))
        ds: xr.Dataset = xr.open_zarr(self.zstore, group=path, consolidated=False, zarr_format=3)
        per_block = [name for name in ("acts", "bits") if name in ds]
        for name in per_block if blocks_per_chunk > 1 else ():  # these alone: label's one storage chunk stays whole
            array = array_in(group, name)
            ds[name] = ds[name].copy(
                data=da.from_zarr(array, chunks=(1, spec.block * blocks_per_chunk, *array.chunks[2:]))
            )
        complete = np.repeat(done, spec.block, axis=1)[:, : spec.n_examples]
        ds = ds.drop_vars([v for v in ("done", "baseline_parts", "segment_done", "moments", *MANIFESTS) if v in ds])
        ds["label"] = ds["label"].load()  # small: in memory, so that e.g. groupby(ds.label) works
        for name in ("prediction", "scores", "length"):
            if name in ds:
                ds[name] = ds[name].copy(data=_read_done_blocks(array_in(group, name), done, spec.block))
        for name in per_block if not done.all() else ():
            ds[name] = ds[name].copy(data=_undone_as_fill(ds[name].data, done, spec.block))
        ds["complete"] = (("seed", "example"), complete)
        ds.attrs = {
            "spec": to_attrs(spec),
            "label_names": list(spec.label_names),
            "layout": spec.model.layout,
            "token0": TOKEN0[spec.model.layout] if spec.stack == "encoder" else "the first decoding step",
        }
        return ds

    def extraction_reader(self, task: str, split: str, stack: str = "encoder") -> ExtractionReader:
        """One stack of a complete extraction, for kernels that read its arrays chunk by chunk (no xarray dataset
        opened for it); the usual clear error when it is missing or unfinished."""
        group = self._complete_extraction(task, split, stack)
        if group is None:
            raise self._no_extraction(task, split, stack)
        return ExtractionReader(from_attrs(ExtractionSpec, json_object(group, "spec")), self.location, group)

    def extraction_readers(self, task: str, split: str) -> list[ExtractionReader]:
        """Each stack of a complete extraction (the encoder's, then T5's decoder's), every group opened and checked
        once; the usual clear error when it is missing or unfinished."""
        readers = [
            ExtractionReader(from_attrs(ExtractionSpec, json_object(group, "spec")), self.location, group)
            for stack in STACKS
            if (group := self._complete_extraction(task, split, stack)) is not None
        ]
        if not readers:
            raise self._no_extraction(task, split, "encoder")
        return readers

    def _complete_extraction(self, task: str, split: str, stack: str) -> zarr.Group | None:
        """An extraction's group when it exists (None when not), once every block is in (else the usual error)."""
        group = self._group(extraction_path(task, split, stack), "extraction")
        if group is not None and not is_complete(group):
            _refuse_unfinished(values_in(group, "done"), task, split)
        return group

    def _no_extraction(self, task: str, split: str, stack: str) -> ActstoreError:
        known = ", ".join(f"{t}/{s}" for t, ss in self.tasks().items() for s in ss) or "none"
        what = f"{task}/{split}" + ("" if stack == "encoder" else f" ({stack})")
        return ActstoreError(f"no extraction {what} in {self.location} (present: {known})")

    def activations(
        self, task: str, split: str = "validation", *, stack: str = "encoder", blocks_per_chunk: int = 1
    ) -> xr.DataArray:
        """The stored values (seed, example, layer, token, neuron), lazily; refused in one line when the extraction
        kept only its above-baseline bits."""
        ds = self.extraction(task, split, stack=stack, blocks_per_chunk=blocks_per_chunk)
        if "acts" not in ds:
            spec = from_attrs(ExtractionSpec, ds.attrs["spec"])
            kept = (
                f"only its above-baseline bits (--keep bits, against the baseline of '{spec.baseline_task}')"
                if spec.store_bits
                else "no activations (a streamed train split: only its baseline)"
            )
            raise ActstoreError(
                f"{task}/{split} in {self.location} kept {kept}: the raw activations are not stored; "
                "extract into a new store with --keep both (or --store-train) for them"
            )
        return ds["acts"]

    def above(self, task: str, split: str = "validation", *, stack: str = "encoder") -> xr.DataArray:
        """``1[a > baseline]`` (seed, example, layer, token, neuron) as booleans, unpacked lazily from the stored
        bits (the baseline: ``attrs["baseline_task"]``'s train mean)."""
        import xarray as xr

        ds = self.extraction(task, split, stack=stack)
        spec = from_attrs(ExtractionSpec, ds.attrs["spec"])
        if "bits" not in ds:
            raise ActstoreError(
                f"{task}/{split} in {self.location} kept no above-baseline bits: extract it with "
                "--keep bits or --keep both"
            )
        n = spec.model.n_neurons
        bits = ds["bits"].data
        unpacked = bits.map_blocks(
            lambda b: np.unpackbits(b, axis=-1, bitorder="little")[..., :n].astype(bool),
            chunks=(*bits.chunks[:-1], (n,)),
            dtype=bool,
        )
        return xr.DataArray(
            unpacked,
            dims=("seed", "example", "layer", "token", "neuron"),
            coords={k: ds[k] for k in ("seed", "example", "layer", "token")} | {"neuron": np.arange(n)},
            attrs={"baseline_task": spec.baseline_task},
            name="above",
        )

    def baseline(self, task: str, stack: str = "encoder") -> xr.DataArray:
        """Eq. 2 per (seed, layer, token, neuron): the mean train activation, float64."""
        group = self._group(extraction_path(task, "train", stack), "extraction")
        if group is None or not is_complete(group):
            raise ActstoreError(
                f"no complete train baseline for task '{task}' ({stack}) in {self.location}: "
                "extract its train split first"
            )
        return self.extraction(task, "train", stack=stack, complete_only=False)["baseline"].load()


def _refuse_unfinished(done: np.ndarray[Any, Any], task: str, split: str) -> None:
    """The one line that says an extraction has blocks still to extract (its done markers say which)."""
    if not done.all():
        raise ActstoreError(
            f"extraction {task}/{split} is incomplete ({int(done.sum())}/{done.size} blocks done): "
            "run the same actstore extract command again to finish it"
        )


def _undone_as_fill(values: da.Array, done: np.ndarray, block: int) -> da.Array:
    """Lazy activations (NaN) or bits (0) whose blocks not extracted yet are made here, never read: their chunks do
    not exist, and reading one would be a fault (``complete`` says which blocks are real)."""
    import dask.array as da

    fill = np.nan if values.dtype.kind == "f" else 0
    rows = []
    for s in range(done.shape[0]):
        parts = [values[s : s + 1, b * block : (b + 1) * block] for b in range(done.shape[1])]
        rows.append(
            da.concatenate(
                [
                    p if done[s, b] else da.full(p.shape, fill, dtype=p.dtype, chunks=p.chunks)
                    for b, p in enumerate(parts)
                ],
                axis=1,
            )
        )
    joined: da.Array = da.concatenate(rows, axis=0)
    return joined


def _read_done_blocks(array: zarr.Array[Any], done: np.ndarray[Any, Any], block: int) -> np.ndarray[Any, Any]:
    """A (seed, example, ...) array, or an (example,) one every seed's block writes, read where its blocks are done,
    its fill value elsewhere: the chunks of blocks not extracted yet do not exist, and any other missing chunk is a
    fault."""
    if done.all():
        return np.asarray(array[...])
    values = np.full(array.shape, array.fill_value, array.dtype)
    per_seed = array.ndim > 1
    for s, b in zip(*np.nonzero(done)) if per_seed else ((None, b) for b in np.nonzero(done.any(axis=0))[0]):
        rows = slice(b * block, (b + 1) * block)
        where = (s, rows) if per_seed else rows
        values[where] = array[where]
    return values
