"""actstore: a chunked Zarr store of FFN activations for skill-neuron analysis of prompt-tuned models."""

from __future__ import annotations

from pathlib import Path as _Path
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Installed, cli/, data/ and schemas/ are mapped to actstore.cli, actstore.data and actstore.schemas
# (pyproject.toml). Imported straight from a source checkout, the same names resolve beside this folder.
if (_Path(__file__).resolve().parent.parent / "pyproject.toml").is_file():
    __path__.append(str(_Path(__file__).resolve().parent.parent))

from .errors import ActstoreError

if TYPE_CHECKING:
    from .store import Store, open_store

__all__ = ["ActstoreError", "Store", "__version__", "open_store"]

#: names imported on first use (PEP 562): the store pulls in zarr, dask and xarray (most of a second), which
#: `actstore --version`, `--help` and every module that needs only the errors or specs should not pay for
_LAZY = {"Store": "store", "open_store": "store"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
