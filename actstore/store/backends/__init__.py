"""Where a store lives: a local directory (``local``) or object storage and memory (``object_store``), chosen from
the path or URL a user gives. The rest of actstore sees a ``Backend`` and a zarr store, never which one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ActstoreError
from .base import Backend
from .local import LocalBackend
from .object_store import SCHEMES, ObjectBackend

__all__ = ["Backend", "StoreLocation", "open_backend"]

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")


@dataclass(frozen=True)
class StoreLocation:
    """A store's path or URL with the options to reach it (``--store`` with its ``--storage-option``s); prints as
    the URL, so that messages name it as the user wrote it."""

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.url


def open_backend(
    location: str | Path | StoreLocation | Backend, storage_options: Mapping[str, Any] | None = None
) -> Backend:
    """The backend of a path (or ``file://`` URL), an ``s3://``, ``gs://``, ``az://`` or ``memory://`` URL.
    Credentials and endpoints come from the standard environment (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ...);
    ``storage_options`` go to the fsspec file system (e.g. ``endpoint_url``, ``anon``). Makes no request."""
    if isinstance(location, Backend):
        return location
    options = dict(storage_options or {})
    if isinstance(location, StoreLocation):
        options = {**location.storage_options, **options}
        location = location.url
    text = str(location)
    match = _URL.match(text)
    scheme = match.group(1).lower() if match else None
    if scheme in SCHEMES:
        return ObjectBackend(text, scheme, options)
    if scheme not in (None, "file"):
        known = ", ".join(f"{s}://" for s in ("file", *SCHEMES))
        raise ActstoreError(
            f"unknown store URL scheme '{scheme}://' in {text}: give a path or a URL starting with one of {known}"
        )
    if options:
        raise ActstoreError(f"--storage-option is for object stores; {text} is a local directory")
    return LocalBackend(match.group(2) if match else text)
