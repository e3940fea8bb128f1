"""actstore: a chunked Zarr store of FFN activations for skill-neuron analysis of prompt-tuned models."""

from pathlib import Path as _Path

__version__ = "0.1.0"

# Installed, cli/, data/ and schemas/ are mapped to actstore.cli, actstore.data and actstore.schemas
# (pyproject.toml). Imported straight from a source checkout, the same names resolve beside this folder.
if (_Path(__file__).resolve().parent.parent / "pyproject.toml").is_file():
    __path__.append(str(_Path(__file__).resolve().parent.parent))

from .errors import ActstoreError  # noqa: E402
from .store import Store, open_store  # noqa: E402

__all__ = ["ActstoreError", "Store", "open_store", "__version__"]
