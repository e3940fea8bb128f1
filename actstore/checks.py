"""Checks shared by the library's entry points: bad input fails in one line before anything is written."""

from __future__ import annotations

import math
from pathlib import Path

from .errors import ActstoreError
from .store import Store
from .store.backends import StoreLocation, open_backend


def check_positive(**values: object) -> None:
    """Sizes and counts must be integers > 0: a 0 fails deep inside a run, and a negative batch size once stored
    garbage. Names are the options' (``batch_size`` is reported as ``batch-size``)."""
    for name, value in values.items():
        label = name.replace("_", "-")
        if not isinstance(value, int) or isinstance(value, bool):
            raise ActstoreError(f"{label} must be an integer, got {value!r}")
        if value <= 0:
            raise ActstoreError(f"{label} must be positive, got {value}")


def check_positive_number(**values: object) -> None:
    """Rates and scales must be finite numbers > 0 (NaN and inf included in what is refused)."""
    for name, value in values.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)  # True is no rate
        if not (number and isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ActstoreError(f"{name.replace('_', '-')} must be a positive number, got {value!r}")


def existing_store(location: str | Path | StoreLocation) -> Store | None:
    """The store at ``location`` opened read-only, or None where there is none yet: what a writing command checks its
    input against before it opens (and so creates) the store."""
    backend = open_backend(location)
    return Store(backend) if backend.exists() else None
