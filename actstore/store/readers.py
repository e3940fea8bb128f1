"""Typed views of what a store holds, so that no consumer reaches into its zarr groups or JSON attributes.

``Store`` opens and checks a group once (its seal, its schema, its completion) and hands out a reader: what leaves
the storage layer is a spec, numpy values, or one array for a kernel that reads it chunk by chunk; never a group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from ..errors import ActstoreError
from ..specs import ExtractionSpec
from .chunks import ChunkReader
from .members import array_in


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
