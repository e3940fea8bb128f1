"""A store in object storage (``s3://``, ``gs://``, ``az://``) or in this process's memory (``memory://``), through
fsspec and zarr's ``FsspecStore``.

Every object is written by one PUT, durable and atomic per key when it returns: nothing needs to be synced, and
no reader ever sees half an object. There is no lock: every key an extraction writes holds the same bytes
whoever writes it, so concurrent writers of one extraction are safe without one (README, "Where a store lives").
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, Mapping

import zarr
from zarr.core.sync import sync
from zarr.storage import FsspecStore, WrapperStore

from ...errors import ActstoreError, StoreUnreachable
from .base import Backend

#: URL scheme → how to install the fsspec package that implements it (gcsfs and adlfs: of the installed fsspec's
#: version, which this project does not pin)
SCHEMES = {
    "s3": "pip install 'actstore[s3]'",
    "gs": "pip install gcsfs",
    "gcs": "pip install gcsfs",
    "az": "pip install adlfs",
    "abfs": "pip install adlfs",
    "memory": "",
}

#: fail fast on an endpoint that does not answer; a key already listed is never cached (other writers add keys)
_DEFAULTS: dict[str, dict[str, Any]] = {
    "s3": {
        "skip_instance_cache": True,
        "use_listings_cache": False,
        "config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3, "mode": "standard"}},
    },
    "gs": {"skip_instance_cache": True, "use_listings_cache": False},
    "az": {"skip_instance_cache": True, "use_listings_cache": False},
}
_DEFAULTS["gcs"], _DEFAULTS["abfs"] = _DEFAULTS["gs"], _DEFAULTS["az"]

_CREDENTIALS = {
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or pass --storage-option "
    "anon=true for a public bucket"
}


class ObjectBackend(Backend):
    def __init__(self, url: str, scheme: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url, self.scheme = url.rstrip("/"), scheme
        self.in_process = scheme == "memory"
        # a copy: botocore rewrites the retries it is given in place (max_attempts → total_max_attempts)
        self.options = _merge(copy.deepcopy(_DEFAULTS.get(scheme, {})), dict(storage_options or {}))
        try:
            self._store = FsspecStore.from_url(self.url, storage_options=self.options)
        except ImportError as exc:
            raise ActstoreError(
                f"{scheme}:// stores need a package that is not installed ({exc}): {SCHEMES[scheme]}"
            ) from None
        except (TypeError, ValueError) as exc:  # an option the file system does not take
            raise ActstoreError(f"bad --storage-option for {self.url}: {exc}") from None
        self._closing = False
        self.deadline = _deadline(self.scheme, self.options, self._store.fs)

    def zarr_store(self, read_only: bool) -> AnsweringStore:
        return AnsweringStore(self._store.with_read_only(read_only), self.url, self.deadline)

    def exists(self) -> bool:
        with self._errors():
            if sync(self._store.exists("zarr.json")):
                return True
            bucket = self._store.path.strip("/").split("/")[0]
            if not self.in_process and not sync(self._store.fs._exists(bucket)):
                raise ActstoreError(
                    f"the bucket '{bucket}' of {self.url} does not exist (or is not visible with "
                    "these credentials): create it first, or check the URL"
                )
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
            if _unanswered(exc):
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


def _unanswered(exc: Exception) -> bool:
    """Whether a file system's exception says that its service did not answer: no connection, or no reply in time
    (botocore's EndpointConnectionError, ReadTimeoutError, ConnectionClosedError, aiohttp's, the built-in ones)."""
    kind = type(exc).__name__
    return "Connect" in kind or "Timeout" in kind or isinstance(exc, (ConnectionError, TimeoutError))


@contextmanager
def _answered(url: str) -> Iterator[None]:
    """A service lost in the middle of a command, once the file system gave up retrying, as one
    ``StoreUnreachable`` instead of its client's chained exceptions."""
    try:
        yield
    except ActstoreError:
        raise
    except Exception as exc:
        if not _unanswered(exc):
            raise
        raise StoreUnreachable(
            f"lost the object store at {url}, no answer after the retries its storage options "
            f"allow ({type(exc).__name__}: {exc})"
        ) from None


def _request(name: str, bounded: bool) -> Callable[..., Any]:
    """The wrapped store's coroutine method ``name`` through ``_answered``; a request for one key ``bounded`` by
    the store's deadline (a whole directory may take longer)."""

    async def call(self: AnsweringStore, *args: Any, **kwargs: Any) -> Any:
        with _answered(self.url):
            limit = asyncio.timeout(self.deadline if bounded else None)
            try:
                async with limit:
                    return await getattr(self._store, name)(*args, **kwargs)
            except TimeoutError:
                if limit.expired():
                    raise TimeoutError(f"no reply within {self.deadline:g} s, every attempt included") from None
                raise

    call.__name__ = name
    return call


def _listing(name: str) -> Callable[..., AsyncGenerator[Any, None]]:
    """The wrapped store's asynchronous iterator ``name``, through ``_answered``."""

    async def call(self: AnsweringStore, *args: Any) -> AsyncGenerator[Any, None]:
        with _answered(self.url):
            async for item in getattr(self._store, name)(*args):
                yield item

    call.__name__ = name
    return call


class AnsweringStore(WrapperStore[FsspecStore]):
    """The file system's zarr store, every request of which ends in ``StoreUnreachable`` where the service stopped
    answering (died, hung, the network went): whoever reads or writes (a writer thread, a dask task) raises it,
    and the command words it in one line (what is marked done is whole, so the same command continues). A request
    for one key that outlasts ``deadline`` seconds is given up too."""

    def __init__(self, store: FsspecStore, url: str, deadline: float | None = None) -> None:
        super().__init__(store)
        self.url, self.deadline = url, deadline

    def _with_store(self, store: FsspecStore) -> AnsweringStore:
        return type(self)(store, self.url, self.deadline)

    get, get_partial_values, exists, set, delete = (
        _request(name, True) for name in ("get", "get_partial_values", "exists", "set", "delete")
    )
    delete_dir, is_empty, clear = (_request(name, False) for name in ("delete_dir", "is_empty", "clear"))
    list, list_prefix, list_dir, _get_many = map(_listing, ("list", "list_prefix", "list_dir", "_get_many"))


def _deadline(scheme: str, options: Mapping[str, Any], fs: Any) -> float | None:
    """How long one request may take, all its attempts included: s3fs's tries (``fs.retries``) of botocore's
    attempts (the first and ``max_attempts`` retries), each given its connect and read timeouts. Where the clients
    leave a gap it is the only bound: botocore asks for "100-continue" before a PUT's body, and aiohttp starts the
    read timeout only once the body is sent, so a PUT to an endpoint that stopped answering would wait for ever."""
    if scheme != "s3":
        return None
    config = options["config_kwargs"]
    retries = config["retries"]
    attempts = int(retries.get("total_max_attempts", retries.get("max_attempts", 0) + 1))
    return getattr(fs, "retries", 1) * attempts * (float(config["connect_timeout"]) + float(config["read_timeout"]))


#: sessions to close when their file system is collected, or at exit while zarr's loop still runs (this handler,
#: registered after zarr's import, runs before zarr stops its loop)
_SESSIONS: list[weakref.finalize[..., Any]] = []
atexit.register(lambda: [close() for close in _SESSIONS])


def _merge(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over ``defaults``, dictionaries (such as ``config_kwargs``) merged key by key."""
    merged = dict(defaults)
    for key, value in given.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if nested else value
    return merged
