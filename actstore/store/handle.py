"""The handle every job of ``Store`` works through: the store opened in a mode, its root group, the writer lock,
and the checked access to groups that reading extractions, datasets and the inventory all share."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import zarr

from ..errors import ActstoreError, StoreFault
from .attrs import consolidate, new_root_attrs
from .backends import Backend, StoreLocation, open_backend
from .backends.local import PARTIAL_SUFFIX
from .integrity import StrictStore, check_seal
from .ledger import Ledger
from .members import group_in
from .schema import validate

if TYPE_CHECKING:
    from zarr.abc.store import Store as ZarrStore

#: how a store is opened: read only, to add to it, or to create it if absent
Mode = Literal["r", "r+", "a"]


class StoreBase:
    """An opened store: its backend, its strict zarr store and root group, and the groups in it (``Store`` adds
    what is read and written in them)."""

    def __init__(
        self,
        location: str | Path | StoreLocation | Backend,
        mode: Mode = "r",
        storage_options: Mapping[str, object] | None = None,
    ) -> None:
        """``location``: a path, or a URL (``s3://bucket/prefix``, ``gs://``, ``az://``, ``file://``, ``memory://``)
        with ``storage_options`` for its file system (``backends.open_backend``). ``mode``: ``"r"`` read only,
        ``"r+"`` add to an existing store, ``"a"`` create it if absent."""
        if mode not in ("r", "r+", "a"):
            raise ValueError(f"mode must be r, r+ or a, not {mode!r}")
        self.backend = open_backend(location, storage_options)
        #: the store's path or URL, as messages name it
        self.location = self.backend.url
        self.read_only = mode == "r"
        if not self.backend.exists() and mode != "a":
            raise ActstoreError(f"no actstore store at {self.location}")
        try:
            self.zstore = StrictStore(self.backend.zarr_store(self.read_only), self.location, Ledger())
            # every zarr.json as it is now; the root's consolidated copy is for plain xarray (``attrs.consolidate``)
            self.root = self._open_root()
            if not self.read_only and "actstore" not in self.root.attrs:
                self.root.attrs.put(new_root_attrs())
                consolidate(self.zstore)
        except OSError as exc:
            raise ActstoreError(f"cannot write a store at {self.location}: {exc.strerror or exc}") from None
        validate("root", dict(self.root.attrs), self.location)

    def _open_root(self) -> zarr.Group:
        """The root group; created if absent, where another process (a rank of the same launch) may create it at the
        same moment: then it is opened as that process made it."""
        mode: Mode = "r" if self.read_only else "a"
        try:
            return zarr.open_group(self.zstore, mode=mode, zarr_format=3, use_consolidated=False)
        except zarr.errors.ContainsGroupError:
            return zarr.open_group(self.zstore, mode=mode, zarr_format=3, use_consolidated=False)

    @property
    def path(self) -> Path:
        """The directory of a local store (messages use ``location``, which names any store)."""
        path: Path | None = getattr(self.backend, "path", None)
        if path is None:
            raise ActstoreError(f"{self.location} is not a local directory")
        return path

    @property
    def name(self) -> str:
        """The store's last path component (``sst2.zarr``)."""
        return self.backend.name

    # ---- locking: what one writer may assume depends on where the store lives (``Backend.writer_lock``)

    @contextmanager
    def writing(self, shared: bool = False) -> Iterator[None]:
        """Hold the store's writer lock: exclusive for one process; ``shared`` for the ranks of one sharded launch,
        which write disjoint units (an exclusive writer is refused meanwhile, and only it clears orphans)."""
        if self.read_only:
            raise ActstoreError(f"{self.location} was opened read-only")
        with self.backend.writer_lock(shared) as alone:
            self.zstore.sole_writer = alone
            try:
                yield
                consolidate(self.zstore)  # whatever the command changed (a group removed by verify --repair, ...)
            finally:
                self.zstore.sole_writer = False

    # ---- groups

    def _group(self, path: str, kind: str) -> zarr.Group | None:
        """An existing, fully created group (its spec written), validated and its digests checked; else None.
        A folder that holds data but lost its ``zarr.json`` is a fault, not an absent group."""
        try:
            group = group_in(self.root, path)
        except KeyError:
            if any_key(self.zstore, path + "/"):
                raise StoreFault(
                    f"{self.location}/{path} holds data but its zarr.json is missing: run actstore verify "
                    "on the store (--repair to mark what can be recomputed)"
                ) from None
            return None
        attrs = dict(group.attrs)
        if "spec" not in attrs:
            return None
        check_seal(group, f"{self.location}/{path}")
        validate(kind, attrs, f"{self.location}/{path}")
        return group

    def _names(self, path: str) -> list[str]:
        try:
            return sorted(group_in(self.root, path).group_keys())
        except KeyError:
            return []


def any_key(zstore: ZarrStore, prefix: str = "") -> bool:
    """Whether any key starts with ``prefix`` (a folder that holds data, or a store that holds anything); a file
    another process is still writing (a local store's ``.partial``) is not data yet: a rank waiting for the group
    rank 0 is creating must not take its zarr.json in flight for a lost one."""

    async def first() -> bool:
        async for key in zstore.list_prefix(prefix):
            if not key.endswith(PARTIAL_SUFFIX):
                return True
        return False

    return zarr.core.sync.sync(first())
