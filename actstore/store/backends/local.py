"""A store in a local directory: chunk files fsync'ed before their block counts as stored, one writer process
at a time (an ``flock`` the kernel drops when the process dies, even by kill -9) on the sibling file
``<store>.lock``: outside the store, which holds nothing but the Zarr hierarchy (zarr warns about any other file)."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from zarr.storage import LocalStore

from ...errors import ActstoreError
from .base import Backend

if TYPE_CHECKING:
    from zarr.abc.store import ByteRequest
    from zarr.core.buffer import Buffer, BufferPrototype

#: how zarr's LocalStore names a file while it writes it (``<name>.<uuid>.partial``, then renamed into place)
PARTIAL_SUFFIX = ".partial"
#: where schema version 2 kept the lock: inside the store, where zarr lists it as a foreign object
LEGACY_LOCK = ".actstore.lock"


class LocalBackend(Backend):
    def __init__(self, path: str | Path) -> None:
        if not str(path).strip():  # Path("") is the working directory: a store would land among the user's files
            raise ActstoreError("the store's path is empty: give a directory, such as runs/sst2.zarr, or a URL")
        self.path = Path(path)
        self.url = str(self.path)

    def zarr_store(self, read_only: bool) -> LocalStore:
        if not read_only:
            self._check_place()
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ActstoreError(f"cannot write a store at {self.path}: {exc.strerror or exc}") from None
        return PermittedStore(self.path, read_only=read_only)

    def _check_place(self) -> None:
        """A store is written only into a directory of its own, checked before anything is written: not the
        file-system root (its lock ``<store>.lock`` goes beside it), and not a directory that holds other files (a
        store spread among them could not be told from them, nor removed without them)."""
        real = self.path.resolve()
        if not real.name:
            raise ActstoreError(
                f"{self.url} is the file-system root: a store needs a directory of its own, such as "
                f"{real / 'runs' / 'sst2.zarr'}"
            )
        if self.exists() or not real.is_dir():
            return
        foreign = sorted(entry.name for entry in os.scandir(real) if not _of_a_store(entry))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ActstoreError(
                f"{self.url} is a directory that holds other files ({shown}) and no actstore store: "
                f"give a new or empty directory, such as {self.path / 'sst2.zarr'}"
            )

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        return (self.path / "zarr.json").is_file()

    def make_durable(self, keys: Iterable[str]) -> None:
        """zarr renames each chunk file into place; fsync makes its bytes survive a power cut too. The files are
        fsync'ed at the same time (the disk takes them in one flush rather than one after another)."""
        keys = list(keys)
        with ThreadPoolExecutor(max_workers=min(len(keys), 16) or 1) as pool:
            list(pool.map(self._fsync, keys))

    def _fsync(self, key: str) -> None:
        fd = os.open(self.path / key, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @property
    def lock_path(self) -> Path:
        """``<store>.lock`` beside the store (of its real path, so that every path to one store shares one lock)."""
        real = self.path.resolve()
        return real.with_name(real.name + ".lock")

    @contextmanager
    def writer_lock(self, shared: bool = False) -> Iterator[bool]:
        """One writer process per store (``shared``: the ranks of one sharded launch, which write disjoint units,
        an exclusive writer refused meanwhile); an exclusive writer removes the temporary files of a killed one,
        and the lock file version 2 kept inside the store once no process of that version holds it. Gives whether
        the holder is the only writer: an exclusive one is."""
        with self._flock(self.lock_path, shared):
            if not shared:  # a rank's temporary files could still be in flight
                for folder, _, files in os.walk(self.path):  # os.walk: a third faster than Path.rglob
                    for name in files:
                        if name.endswith(PARTIAL_SUFFIX):
                            os.unlink(os.path.join(folder, name))
                if (self.path / LEGACY_LOCK).is_file():
                    with self._flock(self.path / LEGACY_LOCK, False):
                        (self.path / LEGACY_LOCK).unlink()
            yield not shared

    def _flock(self, path: Path, shared: bool) -> AbstractContextManager[None]:
        try:
            lock = open(path, "a")  # noqa: SIM115 - _held keeps it open while the lock is held, then closes it
        except OSError as exc:
            why = "read-only file system" if exc.errno == errno.EROFS else exc.strerror or str(exc)
            raise ActstoreError(f"cannot write to the store {self.path}: {why}") from None
        return _held(lock, shared, self.path)


class PermittedStore(LocalStore):
    """zarr's LocalStore, where a file this user may not read or write is one line naming it: a permission of the
    file system, not damage (nothing ``verify --repair`` could mend), and no ``.partial`` name of zarr's."""

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        with _permitted("read", self.root / key):
            return await super().get(key, prototype, byte_range)

    async def set(self, key: str, value: Buffer) -> None:
        with _permitted("write", self.root / key):
            await super().set(key, value)


@contextmanager
def _permitted(action: str, path: Path) -> Iterator[None]:
    try:
        yield
    except PermissionError:
        raise ActstoreError(
            f"permission denied to {action} {path}: give the user who runs actstore access to the "
            "store's files (nothing is damaged)"
        ) from None


def _of_a_store(entry: os.DirEntry[str]) -> bool:
    """Whether an entry of a directory without a root ``zarr.json`` may belong to a store that lost it (``verify
    --repair`` rewrites it): a zarr group, or a file zarr is writing."""
    group = entry.is_dir() and os.path.isfile(os.path.join(entry.path, "zarr.json"))
    return group or entry.name.endswith(PARTIAL_SUFFIX)


@contextmanager
def _held(lock: IO[str], shared: bool, store: Path) -> Iterator[None]:
    """``lock`` flocked (shared or exclusive) for the block, or one line saying who holds it."""
    with lock:
        try:
            fcntl.flock(lock, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ActstoreError(f"{store} is being written by another actstore process") from None
        yield
