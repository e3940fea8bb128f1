"""What ``actstore info`` shows: a summary of everything the store holds, read through the other jobs."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..specs import STACKS, TOKEN0, ExtractionSpec, ModelSpec, from_attrs, packed_size, to_attrs
from .datasets import DatasetsMixin
from .extractions import ExtractionsMixin
from .members import json_object, values_in
from .paths import RANKINGS, extraction_path, ranking_path

#: how an extraction's chunks are checked on every read (``ExtractionSpec.manifests``), as ``info`` says it
CHUNK_CHECKS = {
    True: "chunks bound to their address (CRC32C recorded in each block's manifest)",
    False: "chunks checked by their own CRC32C only (extracted before manifests: an exchanged or stale "
    "chunk is not caught; extract into a new store to bind them)",
}


class InventoryMixin(ExtractionsMixin, DatasetsMixin):
    """``Store``'s summary, over its extractions, prompts, rankings and results."""

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


def _model_entries(model: ModelSpec) -> dict[str, str]:
    """What ``info`` says of the model a part of the store was made with, in place of its whole spec."""
    return {"model": model.name, "architecture": model.architecture, "model_dtype": model.dtype, "layout": model.layout}
