"""Storage backend: the Zarr v3 layout, its JSON Schema, and crash-safe writers."""

from .store import ExtractionWriter, Store, open_store

__all__ = ["ExtractionWriter", "Store", "open_store"]
