"""Typed views of what a store holds, so that no consumer reaches into its zarr groups or JSON attributes.

``Store`` opens and checks a group once (its seal, its schema, its completion) and hands out a reader: what leaves
the storage layer is a spec, numpy values, or one array for a kernel that reads it chunk by chunk; never a group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from ..errors import ActstoreError, StoreFault
from ..specs import ExtractionSpec, RankingSpec, from_attrs
from .chunks import ChunkReader
from .members import array_in

if TYPE_CHECKING:  # a ranking's dataset is xarray's, imported where a ranking is read
    import xarray as xr


@dataclass(frozen=True, eq=False)
class ExtractionReader:
    """One complete stack of an extraction (the encoder's, or T5's decoder's), opened and checked once."""

    spec: ExtractionSpec
    location: str
    _group: zarr.Group = field(repr=False)

    def has(self, name: str) -> bool:
        """Whether the extraction kept ``name`` (``acts``, ``bits``, ``moments``, ``baseline``, ...)."""
        return name in self._group

    def array(self, name: str) -> zarr.Array[Any]:
        """One stored array, as zarr reads it chunk by chunk (every read checked: ``integrity.StrictStore``)."""
        if name not in self._group:
            raise ActstoreError(f"{self.spec.task}/{self.spec.split} in {self.location} holds no {name}")
        return array_in(self._group, name)

    def chunks(self, name: str) -> ChunkReader:
        """One stored array's whole chunks, for a kernel that counts them one by one (``chunks.ChunkReader``)."""
        return ChunkReader(self.array(name))

    def values(self, name: str) -> np.ndarray[Any, Any]:
        """One small stored array whole (labels, lengths, moments)."""
        return np.asarray(self.array(name)[...])

    @property
    def labels(self) -> np.ndarray[Any, Any]:
        """Each example's class index (-1 where a sub-task leaves it out)."""
        return self.values("label")


@dataclass(frozen=True, eq=False)
class RankingReader:
    """A task's skill-neuron ranking, read once: its spec, parsed once, and its dataset (accuracy, predictivity,
    best_token, rank_in_layer, rank_global; ``layer_stack`` names the stack of every layer)."""

    spec: RankingSpec
    dataset: xr.Dataset = field(repr=False)

    @classmethod
    def from_dataset(cls, ranking: xr.Dataset) -> RankingReader:
        """A ranking as ``Store.ranking`` reads it or ``actstore.ranking.rank`` returns it (its spec in ``attrs``)."""
        spec = ranking.attrs.get("spec")
        if not isinstance(spec, dict):
            raise StoreFault("a ranking without its spec in its attributes: run actstore verify")
        return cls(from_attrs(RankingSpec, spec), ranking)

    @property
    def predictivity(self) -> xr.DataArray:
        """(layer, neuron): each neuron's predictivity (Eq. 5), the mean over seeds of its best token's."""
        return self.dataset["predictivity"]

    def best_token(self, seed_index: int, layer: int, neuron: int) -> int:
        """The prompt token at which a neuron predicts best with the prompt of ``spec.seeds[seed_index]``."""
        return int(self.dataset["best_token"].values[seed_index, layer, neuron])
