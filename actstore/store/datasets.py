"""What is put in one call and read back whole: a task's prompts, and rankings and analysis results as labelled
datasets (no blocks, no done markers, unlike an extraction)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from ..errors import ActstoreError
from ..specs import PromptSpec, RankingSpec, from_attrs, to_attrs
from .attrs import put_attrs, stamp
from .handle import StoreBase
from .integrity import CHECKSUM, WRITE_EVERY_CHUNK, writable
from .members import json_object, values_in
from .paths import RANKINGS, prompts_path, ranking_path, result_path
from .readers import RankingReader

if TYPE_CHECKING:  # imported where used: `actstore info` and `--help` need no xarray
    import xarray as xr


@dataclass(frozen=True, eq=False)
class StoredPrompts:
    """A task's prompts as the store holds them: (seed, token, hidden) float32 vectors, and their spec."""

    vectors: np.ndarray
    spec: PromptSpec


class DatasetsMixin(StoreBase):
    """``Store``'s prompts, rankings and results: each put in one call and read back whole."""

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

    # ---- rankings

    def ranked_tasks(self) -> list[str]:
        return [t for t in self._names(RANKINGS) if self._group(ranking_path(t), "ranking") is not None]

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


def coordinate_attrs(ds: xr.Dataset, name: str) -> dict[str, Any]:
    """A data variable's ``coordinates`` attribute: the non-index coordinates along its dimensions, which plain
    ``xr.open_zarr`` then decodes as coordinates (the convention xarray's own ``to_zarr`` writes)."""
    if name not in ds.data_vars:
        return {}
    names = [str(c) for c in ds.coords if c not in ds.dims and set(ds[c].dims) <= set(ds[name].dims)]
    return {"coordinates": " ".join(names)} if names else {}
