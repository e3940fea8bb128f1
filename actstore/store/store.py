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

``Store`` is put together from one class per job: ``handle.StoreBase`` opens the store and gives checked access
to its groups, ``extractions`` reads the extracted activations, ``datasets`` puts and reads prompts, rankings and
results, ``inventory`` summarizes the store for ``actstore info``.
"""

from __future__ import annotations

from pathlib import Path

from .backends import StoreLocation
from .datasets import DatasetsMixin
from .extractions import ExtractionsMixin
from .handle import Mode, any_key
from .inventory import InventoryMixin

__all__ = ["Mode", "Store", "any_key", "open_store"]  # any_key: for verify


class Store(InventoryMixin, ExtractionsMixin, DatasetsMixin):
    """An activation store in a directory or a bucket; analysts read it by task and split as xarray Datasets."""


def open_store(location: str | Path | StoreLocation, mode: Mode = "r", **storage_options: object) -> Store:
    """Open a store (a path or a URL such as ``s3://bucket/runs/sst2.zarr``; keyword arguments go to its file
    system, e.g. ``endpoint_url=...``): ``mode="r"`` to read (the analyst's view), ``"r+"`` to add to it, ``"a"``
    to create or add."""
    return Store(location, mode, storage_options)
