"""actstore: a chunked Zarr store of FFN activations for skill-neuron analysis of prompt-tuned models."""

__version__ = "0.1.0"

from .errors import ActstoreError  # noqa: E402
from .store import Store, open_store  # noqa: E402

__all__ = ["ActstoreError", "Store", "open_store", "__version__"]
