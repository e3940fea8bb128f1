"""The arrays of an extraction group, derived from its spec: used to create them, and to check and rebuild their
metadata (a damaged ``zarr.json`` of an extraction array is rewritten from here, its chunks kept)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from ..specs import MOMENT_SLOTS, ExtractionSpec, packed_size
from .integrity import CHECKSUM, array_metadata

ACT_DIMS = ("seed", "example", "layer", "token", "neuron")
#: above-baseline bits: byte j holds neurons 8j..8j+7, neuron 8j+i in bit i (numpy's bitorder="little")
BITS_DIMS = ("seed", "example", "layer", "token", "neuron_byte")
#: per block, the moments of its values over examples and tokens (``kernels.bits_and_moments``)
MOMENT_DIMS = ("seed", "block", "moment", "layer", "neuron")


@dataclass(frozen=True)
class ArrayLayout:
    name: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    dims: tuple[str, ...]
    fill: object = 0


def coordinates(spec: ExtractionSpec) -> dict[str, np.ndarray[Any, Any]]:
    """The index coordinates a spec defines; its layers are numbered across stacks (T5's decoder after the encoder).
    ``example`` holds the examples' source row ids where provenance is kept (data, see ``example_arrays``), their
    positions otherwise."""
    first = 0 if spec.stack == "encoder" else spec.model.n_layers
    coords = {
        "seed": np.asarray(spec.seeds, np.int64),
        "example": np.arange(spec.n_examples, dtype=np.int64),
        "layer": first + np.arange(spec.n_layers, dtype=np.int64),
        "token": np.arange(spec.n_positions, dtype=np.int64),
        "neuron": np.arange(spec.model.n_neurons, dtype=np.int64),
        "label_class": np.arange(len(spec.label_names), dtype=np.int64),
    }
    if spec.n_text_fields:
        del coords["example"]
    return coords


def example_arrays(spec: ExtractionSpec) -> list[str]:
    """The arrays that hold the examples' own data (labels; with provenance, source row ids and texts): no spec
    defines them, so the next extract of the split writes them again from the same data (its fingerprint is in the
    spec)."""
    return ["label"] + (["example", "text"] if spec.n_text_fields else [])


def extraction_layout(spec: ExtractionSpec) -> list[ArrayLayout]:
    """Activations chunked one (seed, block of examples, layer) per chunk; one done marker per (seed, block); for
    train, the exact sum of each segment of blocks per (seed, layer), and one marker per (seed, segment)."""
    s, n, b = len(spec.seeds), spec.n_examples, spec.block
    lay, tok, neu, cls = spec.n_layers, spec.n_positions, spec.model.n_neurons, len(spec.label_names)
    arrays = [
        ArrayLayout(name, values.shape, values.shape, "int64", (name,)) for name, values in coordinates(spec).items()
    ]
    if spec.n_text_fields:  # provenance: the source rows, texts and token counts of the examples
        arrays += [
            ArrayLayout("example", (n,), (n,), "int64", ("example",)),
            ArrayLayout(
                "text",
                (n, spec.n_text_fields),
                (min(n, 1 << 12), spec.n_text_fields),
                "str",
                ("example", "text_field"),
                "",
            ),
            ArrayLayout("length", (n,), (b,), "int32", ("example",), -1),
        ]
    if spec.store_acts:
        arrays.append(ArrayLayout("acts", (s, n, lay, tok, neu), (1, b, 1, tok, neu), spec.dtype, ACT_DIMS))
    if spec.store_bits:
        packed = packed_size(neu)
        arrays.append(ArrayLayout("bits", (s, n, lay, tok, packed), (1, b, 1, tok, packed), "uint8", BITS_DIMS))
    if spec.store_moments:
        arrays.append(
            ArrayLayout(
                "moments",
                (s, spec.n_blocks, MOMENT_SLOTS, lay, neu),
                (1, 1, MOMENT_SLOTS, lay, neu),
                "int64" if spec.dtype == "float16" else "float64",
                MOMENT_DIMS,
            )
        )
    arrays += [
        ArrayLayout("label", (n,), (min(n, 1 << 16),), "int64", ("example",)),
        ArrayLayout("prediction", (s, n), (1, b), "int16", ("seed", "example"), -1),
        ArrayLayout("scores", (s, n, cls), (1, b, cls), "float32", ("seed", "example", "label_class"), np.nan),
        ArrayLayout("done", (s, spec.n_blocks), (1, 1), "bool", ("seed", "block"), False),
    ]
    slots = len(block_chunks(spec, 0, 0))
    if spec.manifests:
        arrays.append(
            ArrayLayout(
                "block_crc", (s, spec.n_blocks, slots), (1, 1, slots), "uint32", ("seed", "block", "block_chunk")
            )
        )
    if spec.split == "train":
        g = spec.n_segments
        arrays += [
            ArrayLayout(
                "baseline",
                (s, lay, tok, neu),
                (1, 1, tok, neu),
                "float64",
                ("seed", "layer", "token", "neuron"),
                np.nan,
            ),
            ArrayLayout(
                "baseline_parts",
                (s, g, lay, tok, neu),
                (1, 1, 1, tok, neu),
                "int64" if spec.dtype == "float16" else "float64",
                ("seed", "segment", "layer", "token", "neuron"),
            ),
            ArrayLayout("segment_done", (s, g), (1, 1), "bool", ("seed", "segment"), False),
        ]
        if spec.manifests:
            arrays += [
                ArrayLayout("segment_crc", (s, g, lay), (1, 1, lay), "uint32", ("seed", "segment", "layer")),
                ArrayLayout("baseline_crc", (s, lay), (1, lay), "uint32", ("seed", "layer")),
            ]
    return arrays


def block_chunks(spec: ExtractionSpec, seed_index: int, block: int) -> list[tuple[str, tuple[int, ...]]]:
    """The (array, chunk coordinates) a block writes before its done marker: what the writer makes durable and
    what verify checks."""
    per_layer = [name for name, kept in (("acts", spec.store_acts), ("bits", spec.store_bits)) if kept]
    chunks: list[tuple[str, tuple[int, ...]]] = [
        (name, (seed_index, block, layer, 0, 0)) for name in per_layer for layer in range(spec.n_layers)
    ]
    chunks += [("scores", (seed_index, block, 0)), ("prediction", (seed_index, block))]
    if spec.store_moments:
        chunks.append(("moments", (seed_index, block, 0, 0, 0)))
    if spec.n_text_fields:
        chunks.append(("length", (block,)))
    return chunks


def unit_chunks(
    spec: ExtractionSpec, manifest: str, seed_index: int, unit: int = 0
) -> list[tuple[str, tuple[int, ...]]]:
    """The chunks a unit writes, in the order its manifest records their CRC32Cs: a block's (``block_crc``), a train
    segment's sums (``segment_crc``), a seed's baseline (``baseline_crc``, one unit per seed)."""
    if manifest == "block_crc":
        return block_chunks(spec, seed_index, unit)
    name, where = ("baseline_parts", (seed_index, unit)) if manifest == "segment_crc" else ("baseline", (seed_index,))
    return [(name, (*where, layer, 0, 0)) for layer in range(spec.n_layers)]


def manifest_coords(manifest: str, seed_index: int, unit: int = 0) -> tuple[int, ...]:
    """The chunk of ``manifest`` a unit's CRC32Cs fill."""
    return (seed_index, 0) if manifest == "baseline_crc" else (seed_index, unit, 0)


#: the arrays each manifest's units write, and where a chunk's coordinates say which unit it is in
_UNIT_OF = {
    "acts": "block_crc",
    "bits": "block_crc",
    "scores": "block_crc",
    "prediction": "block_crc",
    "moments": "block_crc",
    "length": "block_crc",
    "baseline_parts": "segment_crc",
    "baseline": "baseline_crc",
}


def recorded_at(spec: ExtractionSpec, name: str, coords: tuple[int, ...]) -> list[tuple[str, tuple[int, ...], int]]:
    """Where the CRC32C of chunk ``coords`` of array ``name`` is recorded: (manifest, its chunk, slot) for every unit
    that writes it (``length``, the same bytes from every seed: each seed's block), none where no unit does."""
    manifest = _UNIT_OF.get(name)
    if manifest is None:
        return []
    if name == "length":
        units = [(s, coords[0]) for s in range(len(spec.seeds))]
    else:
        units = [(coords[0], coords[1] if manifest != "baseline_crc" else 0)]
    places = []
    for s, u in units:
        chunks = unit_chunks(spec, manifest, s, u)
        if (name, coords) in chunks:
            places.append((manifest, manifest_coords(manifest, s, u), chunks.index((name, coords))))
    return places


def sealed_arrays(spec: ExtractionSpec) -> list[str]:
    """The arrays of an extraction written whole when it is created, whose chunks' CRC32Cs its seal records (the
    units' chunks are in their manifests): coordinates and the examples' own data."""
    return [*coordinates(spec), *example_arrays(spec)] if spec.manifests else []


def create_arrays(group: zarr.Group, layout: list[ArrayLayout]) -> None:
    """Create the arrays (metadata only), each with a CRC32C on every chunk; a float array's fill value is NaN, so
    that plain zarr/xarray read a block not extracted yet (its chunks absent) as NaN, never as zeros."""
    for a in layout:
        fill = np.nan if a.dtype != "str" and np.dtype(a.dtype).kind == "f" else a.fill
        group.create_array(
            a.name,
            shape=a.shape,
            chunks=a.chunks,
            dtype=str if a.dtype == "str" else a.dtype,
            fill_value=fill,
            dimension_names=a.dims,
            compressors=CHECKSUM,
            overwrite=True,
        )


def expected_metadata(spec: ExtractionSpec) -> tuple[dict[str, dict[str, Any]], zarr.Group]:
    """The metadata each array of ``spec`` must have, and a scratch in-memory group that holds it."""
    scratch = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    create_arrays(scratch, extraction_layout(spec))
    return array_metadata(scratch), scratch


def rewrite_metadata(group: zarr.Group, name: str, scratch: zarr.Group) -> None:
    """Put back an array's ``zarr.json`` as ``expected_metadata`` made it, leaving its chunks as they are."""
    prototype = default_buffer_prototype()
    value = sync(scratch.store.get(f"{name}/zarr.json", prototype))
    assert value is not None  # expected_metadata made it
    key = f"{group.path}/{name}/zarr.json" if group.path else f"{name}/zarr.json"
    sync(group.store.set(key, value))
