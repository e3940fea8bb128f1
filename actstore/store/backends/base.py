"""What a store needs from the place it lives: everything else in actstore is the same on a disk or in a bucket."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zarr.abc.store import Store as ZarrStore


class Backend(ABC):
    """One store's location. Crash safety rests on two of its promises: ``make_durable`` returns only once the
    given keys survive a crash (a block's done marker is written after it), and every key is written whole or not
    at all (zarr writes a local chunk to a temporary file and renames it; an object PUT is atomic per key)."""

    #: the store's path or URL, as messages name it
    url: str
    #: the store exists in this process only (``memory://``): worker processes would see an empty one
    in_process: bool = False

    @abstractmethod
    def zarr_store(self, read_only: bool) -> ZarrStore:
        """The zarr store over the location (``read_only=False`` makes the location ready to be written)."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether a store is there: its root ``zarr.json`` exists. A location that cannot be reached at all (no
        credentials, no such bucket, no answer) is an ``ActstoreError``, never False."""

    @abstractmethod
    def make_durable(self, keys: Iterable[str]) -> None:
        """Return once the written ``keys`` would survive a crash of the process or of the machine."""

    @abstractmethod
    def writer_lock(self, shared: bool = False) -> AbstractContextManager[bool]:
        """Held while a command writes (``shared``: by each rank of one sharded launch); what it guarantees
        differs by backend (README, "Where a store lives"). It gives whether the holder is sure to be the store's
        only writer meanwhile."""

    @property
    def name(self) -> str:
        """The last part of the path (``sst2.zarr``), for labels such as a tuned prompt's source."""
        return self.url.rstrip("/").rpartition("/")[2]

    def describe(self) -> str:
        return self.url

    def __str__(self) -> str:
        return self.url
