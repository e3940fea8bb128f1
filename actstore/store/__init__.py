"""Storage backend: the Zarr v3 layout, its JSON Schema, and crash-safe writers."""

from .backends import StoreLocation
from .chunks import ChunkReader
from .readers import ExtractionReader, RankingReader
from .store import Store, open_store
from .writer import ExtractionWriter

__all__ = [
    "ChunkReader",
    "ExtractionReader",
    "ExtractionWriter",
    "RankingReader",
    "Store",
    "StoreLocation",
    "open_store",
]
