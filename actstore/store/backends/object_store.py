"""A store in object storage (``s3://``, ``gs://``, ``az://``) or in this process's memory (``memory://``), through
fsspec and zarr's ``FsspecStore``.

Every object is written by one PUT, durable and atomic per key when it returns: nothing needs to be synced, and
no reader ever sees half an object. There is no lock: every key an extraction writes holds the same bytes
whoever writes it, so concurrent writers of one extraction are safe without one (README, "Where a store lives").
"""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, Mapping

import zarr
from zarr.core.sync import sync
from zarr.storage import FsspecStore

from ...errors import ActstoreError
from .base import Backend

#: URL scheme → how to install the fsspec package that implements it (gcsfs and adlfs: of the installed fsspec's
#: version, which this project does not pin)
SCHEMES = {"s3": "pip install 'actstore[s3]'", "gs": "pip install gcsfs", "gcs": "pip install gcsfs",
           "az": "pip install adlfs", "abfs": "pip install adlfs", "memory": ""}

#: fail fast on an endpoint that does not answer; a key already listed is never cached (other writers add keys)
_DEFAULTS: dict[str, dict[str, Any]] = {
    "s3": {"skip_instance_cache": True, "use_listings_cache": False,
           "config_kwargs": {"connect_timeout": 5, "read_timeout": 60,
                             "retries": {"max_attempts": 3, "mode": "standard"}}},
    "gs": {"skip_instance_cache": True, "use_listings_cache": False},
    "az": {"skip_instance_cache": True, "use_listings_cache": False},
}
_DEFAULTS["gcs"], _DEFAULTS["abfs"] = _DEFAULTS["gs"], _DEFAULTS["az"]

_CREDENTIALS = {"s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or pass --storage-option "
                      "anon=true for a public bucket"}


class ObjectBackend(Backend):
    def __init__(self, url: str, scheme: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url, self.scheme = url.rstrip("/"), scheme
        self.in_process = scheme == "memory"
        self.options = _merge(_DEFAULTS.get(scheme, {}), dict(storage_options or {}))
        try:
            self._store = FsspecStore.from_url(self.url, storage_options=self.options)
        except ImportError as exc:
            raise ActstoreError(f"{scheme}:// stores need a package that is not installed ({exc}): "
                                f"{SCHEMES[scheme]}") from None
        except (TypeError, ValueError) as exc:  # an option the file system does not take
            raise ActstoreError(f"bad --storage-option for {self.url}: {exc}") from None
        self._closing = False

    def zarr_store(self, read_only: bool) -> FsspecStore:
        return self._store.with_read_only(read_only)

    def exists(self) -> bool:
        with self._errors():
            if sync(self._store.exists("zarr.json")):
                return True
            bucket = self._store.path.strip("/").split("/")[0]
            if not self.in_process and not sync(self._store.fs._exists(bucket)):
                raise ActstoreError(f"the bucket '{bucket}' of {self.url} does not exist (or is not visible with "
                                    "these credentials): create it first, or check the URL")
            return False

    def make_durable(self, keys: Iterable[str]) -> None:
        """Nothing to do: a PUT is durable when it returns."""

    def writer_lock(self, shared: bool = False) -> nullcontext[bool]:
        """No lock: object stores have no flock, and concurrent writers of one extraction write the same bytes (so
        no writer is ever sure to be the only one)."""
        return nullcontext(False)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The first requests of a command, in one line: no credentials, no answer, access denied."""
        try:
            yield
        except (ActstoreError, FileNotFoundError):
            raise
        except PermissionError as exc:
            raise ActstoreError(f"access to {self.url} was denied: {exc}") from None
        except TypeError as exc:  # an option the file system does not take, met when it first connects
            raise ActstoreError(f"bad --storage-option for {self.url}: {exc}") from None
        except Exception as exc:  # the file system's own types (botocore's, aiohttp's, ...)
            kind = type(exc).__name__
            if "Credential" in kind:
                raise ActstoreError(f"no credentials for {self.url}: {_CREDENTIALS.get(self.scheme, kind)}") from None
            if "Connect" in kind or "Timeout" in kind or isinstance(exc, (ConnectionError, TimeoutError)):
                raise ActstoreError(f"cannot reach the storage service of {self.url}: {exc}") from None
            raise
        finally:
            self._close_with_fs()

    def _close_with_fs(self) -> None:
        """s3fs leaves an asynchronous file system's HTTP session open ("Unclosed client session" on stderr when it
        is collected or at exit): close it with the file system, on zarr's loop, where it was opened."""
        fs = self._store.fs
        creator = getattr(fs, "_s3creator", None)
        if creator is not None and not self._closing:
            _SESSIONS.append(weakref.finalize(fs, type(fs).close_session, zarr.core.sync._get_loop(), creator))
            self._closing = True


#: sessions to close when their file system is collected, or at exit while zarr's loop still runs (this handler,
#: registered after zarr's import, runs before zarr stops its loop)
_SESSIONS: list[weakref.finalize] = []
atexit.register(lambda: [close() for close in _SESSIONS])


def _merge(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over ``defaults``, dictionaries (such as ``config_kwargs``) merged key by key."""
    merged = dict(defaults)
    for key, value in given.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if nested else value
    return merged
