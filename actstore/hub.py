"""Whether the Hugging Face hub can be reached, asked once before anything asks the hub for a file.

Without ``HF_HUB_OFFLINE``, ``huggingface_hub`` (under transformers and datasets) retries every request to an
unreachable hub for 30–45 s before it gives up, and only then does a command say in one line that the model or the
data is not here. ``offline_unless_reachable`` opens one TCP connection to the hub's endpoint with a short timeout
instead, and where none opens sets ``HF_HUB_OFFLINE=1``, which ``huggingface_hub`` reads when it is imported: the
same error then comes in a second, and models and data sets the local cache holds still load. Set either way by the
user, ``HF_HUB_OFFLINE`` is left as it is; behind a proxy (``HTTPS_PROXY``, ...) the direct connection says nothing,
so nothing is checked. Only the standard library is imported here.
"""

from __future__ import annotations

import logging
import os
import socket
from urllib.parse import urlsplit

#: the hub's address where ``HF_ENDPOINT`` does not name another
ENDPOINT = "https://huggingface.co"
#: seconds to wait for the hub's TCP connection: a reachable hub answers in a fraction of this
TIMEOUT_S = 2.0
_PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")

log = logging.getLogger(__name__)


def reachable(endpoint: str | None = None, timeout: float = TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``endpoint`` (default ``$HF_ENDPOINT``, else the hub) opens within ``timeout``
    seconds (a name that does not resolve: no)."""
    url = urlsplit(endpoint or os.environ.get("HF_ENDPOINT") or ENDPOINT)
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except (OSError, ValueError):
        return False
    return True


def offline_unless_reachable(timeout: float = TIMEOUT_S) -> bool:
    """Set ``HF_HUB_OFFLINE=1`` where it is unset, no proxy is configured and the hub does not answer; call it before
    ``huggingface_hub`` is imported. Returns whether it did."""
    if "HF_HUB_OFFLINE" in os.environ or any(os.environ.get(name) for name in _PROXIES):
        return False
    if reachable(timeout=timeout):
        return False
    os.environ["HF_HUB_OFFLINE"] = "1"
    log.info(
        "the Hugging Face hub does not answer: working offline (HF_HUB_OFFLINE=1), from local files and the "
        "hub cache only"
    )
    return True
