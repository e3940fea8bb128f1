"""The Zarr v3 backend: groups, arrays, completion markers and crash-safe writes.

Crash safety rests on three rules:
- every chunk and every ``zarr.json`` is written whole or not at all (a local file is written to a temporary
  file and renamed; an object PUT is atomic), so no reader ever sees half a chunk;
- a block of examples counts as stored only once its ``done`` marker exists, and that marker is
  written after the block's chunks were made durable (``Backend.make_durable``: fsync on a local disk);
- a group's spec is written last when it is created, so a group without one holds nothing.

Faults are never data (``integrity``): every read goes through ``StrictStore`` (a missing chunk or a broken
``zarr.json`` is an error), every chunk carries a CRC32C, every group's metadata a digest.

Where the store lives (a directory, a bucket) is the ``backends`` package's business only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import zarr

from ..errors import ActstoreError, StoreFault
from ..specs import (
    STACKS,
    TOKEN0,
    ExtractionSpec,
    ModelSpec,
    PromptSpec,
    RankingSpec,
    from_attrs,
    packed_size,
    to_attrs,
)
from .attrs import consolidate, is_complete, new_root_attrs, put_attrs, stamp
from .backends import Backend, StoreLocation, open_backend
from .backends.local import PARTIAL_SUFFIX
from .integrity import CHECKSUM, MANIFESTS, WRITE_EVERY_CHUNK, StrictStore, check_seal, writable
from .ledger import Ledger
from .members import array_in, group_in, json_object, values_in
from .paths import EXTRACTIONS, RANKINGS, extraction_path, prompts_path, ranking_path, result_path
from .readers import ExtractionReader, RankingReader
from .schema import validate

if TYPE_CHECKING:  # imported where used: `actstore info` and `--help` need neither xarray nor dask nor numba
    import dask.array as da
    import xarray as xr
    from zarr.abc.store import Store as ZarrStore


#: how an extraction's chunks are checked on every read (``ExtractionSpec.manifests``), as ``info`` says it
#: how a store is opened: read only, to add to it, or to create it if absent
Mode = Literal["r", "r+", "a"]

CHUNK_CHECKS = {
    True: "chunks bound to their address (CRC32C recorded in each block's manifest)",
    False: "chunks checked by their own CRC32C only (extracted before manifests: an exchanged or stale "
    "chunk is not caught; extract into a new store to bind them)",
}


@dataclass(frozen=True, eq=False)
class StoredPrompts:
    """A task's prompts as the store holds them: (seed, token, hidden) float32 vectors, and their spec."""

    vectors: np.ndarray
    spec: PromptSpec


class Store:
    """An activation store in a directory or a bucket; analysts read it by task and split as xarray Datasets."""

    def __init__(
        self,
        location: str | Path | StoreLocation | Backend,
        mode: Mode = "r",
        storage_options: Mapping[str, object] | None = None,
    ) -> None:
        """``location``: a path, or a URL (``s3://bucket/prefix``, ``gs://``, ``az://``, ``file://``, ``memory://``)
        with ``storage_options`` for its file system (``backends.open_backend``). ``mode``: ``"r"`` read only,
        ``"r+"`` add to an existing store, ``"a"`` create it if absent."""
        if mode not in ("r", "r+", "a"):
            raise ValueError(f"mode must be r, r+ or a, not {mode!r}")
        self.backend = open_backend(location, storage_options)
        #: the store's path or URL, as messages name it
        self.location = self.backend.url
        self.read_only = mode == "r"
        if not self.backend.exists() and mode != "a":
            raise ActstoreError(f"no actstore store at {self.location}")
        try:
            self.zstore = StrictStore(self.backend.zarr_store(self.read_only), self.location, Ledger())
            # every zarr.json as it is now; the root's consolidated copy is for plain xarray (``attrs.consolidate``)
            self.root = self._open_root()
            if not self.read_only and "actstore" not in self.root.attrs:
                self.root.attrs.put(new_root_attrs())
                consolidate(self.zstore)
        except OSError as exc:
            raise ActstoreError(f"cannot write a store at {self.location}: {exc.strerror or exc}") from None
        validate("root", dict(self.root.attrs), self.location)

    def _open_root(self) -> zarr.Group:
        """The root group; created if absent, where another process (a rank of the same launch) may create it at the
        same moment: then it is opened as that process made it."""
        mode: Mode = "r" if self.read_only else "a"
        try:
            return zarr.open_group(self.zstore, mode=mode, zarr_format=3, use_consolidated=False)
        except zarr.errors.ContainsGroupError:
            return zarr.open_group(self.zstore, mode=mode, zarr_format=3, use_consolidated=False)

    @property
    def path(self) -> Path:
        """The directory of a local store (messages use ``location``, which names any store)."""
        path: Path | None = getattr(self.backend, "path", None)
        if path is None:
            raise ActstoreError(f"{self.location} is not a local directory")
        return path

    @property
    def name(self) -> str:
        """The store's last path component (``sst2.zarr``)."""
        return self.backend.name

    # ---- locking: what one writer may assume depends on where the store lives (``Backend.writer_lock``)

    @contextmanager
    def writing(self, shared: bool = False) -> Iterator[None]:
        """Hold the store's writer lock: exclusive for one process; ``shared`` for the ranks of one sharded launch,
        which write disjoint units (an exclusive writer is refused meanwhile, and only it clears orphans)."""
        if self.read_only:
            raise ActstoreError(f"{self.location} was opened read-only")
        with self.backend.writer_lock(shared) as alone:
            self.zstore.sole_writer = alone
            try:
                yield
                consolidate(self.zstore)  # whatever the command changed (a group removed by verify --repair, ...)
            finally:
                self.zstore.sole_writer = False

    # ---- groups

    def _group(self, path: str, kind: str) -> zarr.Group | None:
        """An existing, fully created group (its spec written), validated and its digests checked; else None.
        A folder that holds data but lost its ``zarr.json`` is a fault, not an absent group."""
        try:
            group = group_in(self.root, path)
        except KeyError:
            if any_key(self.zstore, path + "/"):
                raise StoreFault(
                    f"{self.location}/{path} holds data but its zarr.json is missing: run actstore verify "
                    "on the store (--repair to mark what can be recomputed)"
                ) from None
            return None
        attrs = dict(group.attrs)
        if "spec" not in attrs:
            return None
        check_seal(group, f"{self.location}/{path}")
        validate(kind, attrs, f"{self.location}/{path}")
        return group

    def _names(self, path: str) -> list[str]:
        try:
            return sorted(group_in(self.root, path).group_keys())
        except KeyError:
            return []

    def tasks(self) -> dict[str, list[str]]:
        """Extracted splits per task."""
        return {task: self._names(f"{EXTRACTIONS}/{task}") for task in self._names(EXTRACTIONS)}

    def ranked_tasks(self) -> list[str]:
        return [t for t in self._names(RANKINGS) if self._group(ranking_path(t), "ranking") is not None]

    def summary(self) -> dict[str, Any]:
        """What the store holds, as JSON-ready values (for ``actstore info``)."""
        root = json_object(self.root, "actstore")
        prompts = {
            t: {**to_attrs(made), **_model_entries(made.model)}
            for t in self._names("prompts")
            if (made := self.prompt_spec(t))
        }
        extractions = {}
        for task, splits in self.tasks().items():
            for split, stack in ((split, stack) for split in splits for stack in STACKS):
                group = self._group(extraction_path(task, split, stack), "extraction")
                if group is None:
                    continue
                spec = from_attrs(ExtractionSpec, json_object(group, "spec"))
                done = values_in(group, "done")
                values = spec.n_examples * len(spec.seeds) * spec.n_layers * spec.n_positions * spec.model.n_neurons
                extractions[f"{task}/{split}" + ("" if stack == "encoder" else f"/{stack}")] = {
                    **to_attrs(spec),
                    **_model_entries(spec.model),
                    "token0": TOKEN0[spec.model.layout] if stack == "encoder" else "the first decoding step",
                    "state": json_object(group, "stamp")["state"],
                    "blocks": int(done.size),
                    "blocks_done": int(done.sum()),
                    "bytes": values * np.dtype(spec.dtype).itemsize if spec.store_acts else 0,
                    "bits_bytes": values // spec.model.n_neurons * packed_size(spec.model.n_neurons)
                    if spec.store_bits
                    else 0,
                    "chunk_check": CHUNK_CHECKS[spec.manifests],
                }
        rankings = {}
        for task in self._names(RANKINGS):
            if (group := self._group(ranking_path(task), "ranking")) is not None:
                rankings[task] = {
                    **json_object(group, "spec"),
                    "best_predictivity": float(values_in(group, "predictivity").max()),
                }
        return {
            "path": self.location,
            "schema_version": root["schema_version"],
            "version": root["version"],
            "prompts": prompts,
            "extractions": extractions,
            "rankings": rankings,
            "results": {kind: self.results(kind) for kind in self._names("results")},
        }

    # ---- prompts

    def prompts(self, task: str) -> StoredPrompts | None:
        """The prompts a task's activations are made with (``prompts.PromptSet.stored`` for the domain's form)."""
        group = self._group(prompts_path(task), "prompts")
        if group is None:
            return None
        return StoredPrompts(values_in(group, "prompt"), from_attrs(PromptSpec, json_object(group, "spec")))

    def prompt_spec(self, task: str) -> PromptSpec | None:
        group = self._group(prompts_path(task), "prompts")
        return None if group is None else from_attrs(PromptSpec, json_object(group, "spec"))

    def put_prompts(self, task: str, vectors: np.ndarray, spec: PromptSpec) -> None:
        """Record the prompts a task's activations were made with; refuse to replace different ones."""
        old = self.prompt_spec(task)
        if old is not None:
            if old.checksum != spec.checksum:
                raise ActstoreError(
                    f"{self.location} already holds other prompts for task '{task}' ({old.source}, {old.checksum}); "
                    "use another store"
                )
            return
        group = self.root.require_group(prompts_path(task))
        group.create_array(
            "prompt",
            data=vectors,
            chunks=vectors.shape,
            config=WRITE_EVERY_CHUNK,
            dimension_names=("seed", "token", "hidden"),
            compressors=CHECKSUM,
            overwrite=True,
            fill_value=np.nan,
        )
        group.create_array(
            "seed",
            data=np.asarray(spec.seeds, dtype=np.int64),
            config=WRITE_EVERY_CHUNK,
            dimension_names=("seed",),
            compressors=CHECKSUM,
            overwrite=True,
        )
        put_attrs(group, {"spec": to_attrs(spec), "stamp": stamp("complete")})

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

    # ---- rankings

    def put_ranking(self, spec: RankingSpec, ranking: xr.Dataset) -> None:
        """Store a ranking as rankings/<task> (a multi-class sub-task's as rankings/<task>:<subtask>)."""
        self._put_dataset(ranking_path(spec.name), to_attrs(spec), ranking)

    def ranking(self, task: str) -> xr.Dataset:
        """Skill-neuron ranking of a task: accuracy, predictivity, best_token, rank_in_layer, rank_global."""
        ds = self._dataset(ranking_path(task), "ranking")
        if ds is None:
            raise ActstoreError(f"task '{task}' has no ranking in {self.location} yet: run actstore rank --task {task}")
        if "layer_stack" not in ds.coords:  # a ranking stored before decoder neurons existed: encoder only
            ds = ds.assign_coords(layer_stack=("layer", ["encoder"] * ds.sizes["layer"]))
        return ds

    def ranking_reader(self, task: str) -> RankingReader:
        """A task's ranking with its spec parsed once (``RankingReader``); the usual clear error when the task is not
        ranked."""
        return RankingReader.from_dataset(self.ranking(task))

    # ---- analysis results (evaluations, suppression curves, transfer, correlations): labelled datasets

    def put_result(self, kind: str, name: str, spec: dict[str, Any], result: xr.Dataset) -> None:
        """Store an analysis result under results/<kind>/<name>, replacing an older one of that name."""
        self._put_dataset(result_path(kind, name), spec, result)

    def result(self, kind: str, name: str) -> xr.Dataset:
        """A stored result (its spec in ``attrs["spec"]``); refused in one line, naming those stored, when it was
        never computed (``find_result`` to ask)."""
        found = self.find_result(kind, name)
        if found is None:
            stored = self.results(kind)
            raise ActstoreError(
                f"{self.location} holds no {kind} result '{name}' (stored: {', '.join(stored) if stored else 'none'})"
            )
        return found

    def find_result(self, kind: str, name: str) -> xr.Dataset | None:
        """A stored result, or None when it was never computed."""
        return self._dataset(result_path(kind, name), "result")

    def results(self, kind: str) -> list[str]:
        return [n for n in self._names(result_path(kind)) if self._group(result_path(kind, n), "result") is not None]

    def _put_dataset(self, path: str, spec: dict[str, Any], ds: xr.Dataset) -> None:
        """Write a dataset's arrays, then its spec: a group without a spec is never read."""
        group = self.root.require_group(path)
        group.attrs.put({})
        variables = {str(name): var for name, var in (*ds.coords.items(), *ds.data_vars.items())}
        values = {name: np.asarray(var.values) for name, var in variables.items()}
        drafts = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)  # the arrays' metadata, made
        for name, var in variables.items():  # where making it costs no I/O
            dtype = values[name].dtype
            text = dtype.kind in "UT"  # text as zarr v3's variable-length string, not numpy's fixed width
            drafts.create_array(
                name,
                shape=values[name].shape,
                dtype=str if text else dtype,
                dimension_names=tuple(map(str, var.dims)),
                compressors=CHECKSUM,
                attributes=coordinate_attrs(ds, name),
                fill_value=np.nan if dtype.kind == "f" else None,
            )
        metadata: dict[str, Any] = {name: array.metadata for name, array in drafts.arrays()}
        arrays = {
            name: array
            for name, array in group.create_hierarchy(metadata, overwrite=True)  # at once, older
            if isinstance(array, zarr.Array)
        }  # arrays removed

        async def fill() -> None:  # every array's chunks at once, not one array after another
            await asyncio.gather(
                *(writable(array).async_array.setitem(Ellipsis, values[name]) for name, array in arrays.items())
            )

        zarr.core.sync.sync(fill())
        put_attrs(group, {"spec": spec, "stamp": stamp("complete"), **({"attrs": ds.attrs} if ds.attrs else {})})

    def _dataset(self, path: str, kind: str) -> xr.Dataset | None:
        group = self._group(path, kind)
        import xarray as xr

        if group is None:
            return None
        ds: xr.Dataset = xr.open_zarr(self.zstore, group=path, consolidated=False, zarr_format=3).load()
        ds = ds.set_coords([name for name in ("layer_stack",) if name in ds.data_vars])  # coordinate_attrs says so too
        own = json_object(group, "attrs") if "attrs" in group.attrs else {}
        ds.attrs = {**own, "spec": json_object(group, "spec")}
        return ds

    def ranking_spec(self, task: str) -> RankingSpec | None:
        group = self._group(ranking_path(task), "ranking")
        return None if group is None else from_attrs(RankingSpec, json_object(group, "spec"))


def open_store(location: str | Path | StoreLocation, mode: Mode = "r", **storage_options: object) -> Store:
    """Open a store (a path or a URL such as ``s3://bucket/runs/sst2.zarr``; keyword arguments go to its file
    system, e.g. ``endpoint_url=...``): ``mode="r"`` to read (the analyst's view), ``"r+"`` to add to it, ``"a"``
    to create or add."""
    return Store(location, mode, storage_options)


def coordinate_attrs(ds: xr.Dataset, name: str) -> dict[str, Any]:
    """A data variable's ``coordinates`` attribute: the non-index coordinates along its dimensions, which plain
    ``xr.open_zarr`` then decodes as coordinates (the convention xarray's own ``to_zarr`` writes)."""
    if name not in ds.data_vars:
        return {}
    names = [str(c) for c in ds.coords if c not in ds.dims and set(ds[c].dims) <= set(ds[name].dims)]
    return {"coordinates": " ".join(names)} if names else {}


def any_key(zstore: ZarrStore, prefix: str = "") -> bool:
    """Whether any key starts with ``prefix`` (a folder that holds data, or a store that holds anything); a file
    another process is still writing (a local store's ``.partial``) is not data yet: a rank waiting for the group
    rank 0 is creating must not take its zarr.json in flight for a lost one."""

    async def first() -> bool:
        async for key in zstore.list_prefix(prefix):
            if not key.endswith(PARTIAL_SUFFIX):
                return True
        return False

    return zarr.core.sync.sync(first())


def _model_entries(model: ModelSpec) -> dict[str, str]:
    """What ``info`` says of the model a part of the store was made with, in place of its whole spec."""
    return {"model": model.name, "architecture": model.architecture, "model_dtype": model.dtype, "layout": model.layout}


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
