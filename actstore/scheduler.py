"""Where dask computes: threads in this process (the default), a local cluster of worker processes, or a running
dask.distributed scheduler (``tcp://host:8786``, or the scheduler file a cluster wrote, e.g. dask-jobqueue's).

One choice per command (``using``) holds for every computation inside it: rank's counts, suppression's spreads,
the report's reads. ``distributed`` (the ``cluster`` extra) is imported only when a cluster is asked for, so that
the CLI on threads starts fast and runs without it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import numpy as np

from .errors import ActstoreError
from .store.backends import StoreLocation, open_backend

if TYPE_CHECKING:
    import dask.array as da

THREADS, PROCESSES = "threads", "processes"
#: honoured when no scheduler is named, as dask.distributed's own ``Client()`` honours it
ENV = "DASK_SCHEDULER_ADDRESS"
#: seconds to reach a scheduler: a wrong address fails at once instead of after dask's default 30 s
CONNECT_TIMEOUT = 5
USAGE = "--scheduler takes threads, processes, tcp://host:port or the path of a dask scheduler file"


@contextmanager
def using(scheduler: str | None = None, store: str | Path | StoreLocation | None = None) -> Iterator[Any]:
    """Compute the block's dask work on ``scheduler``: ``threads``, ``processes`` (a ``local_cluster``, closed on
    exit), an address such as ``tcp://host:8786``, or a scheduler file; None: ``$DASK_SCHEDULER_ADDRESS``, else
    threads. Yields the distributed ``Client`` (None on threads). A scheduler that cannot be reached is an
    ``ActstoreError`` raised before the block runs, so nothing was read or written; so is a ``store`` that lives in
    this process's memory (``memory://``) on any scheduler but threads: worker processes would not see it."""
    scheduler = scheduler or os.environ.get(ENV) or THREADS
    if scheduler != THREADS and store is not None and open_backend(store).in_process:
        raise ActstoreError(
            f"{store} lives in this process's memory, which dask's worker processes do not see: "
            "use --scheduler threads, or a store on disk or in object storage"
        )
    if scheduler == THREADS:
        with dask.config.set(scheduler=THREADS):
            yield None
        return
    address = None if scheduler == PROCESSES else _address(scheduler)
    distributed = _import_distributed()
    # scheduler: set here too, so that leaving restores it even after a failed Client, which leaves it set
    settings = {"scheduler": "dask.distributed", "distributed.comm.timeouts.connect": f"{CONNECT_TIMEOUT}s"}
    with dask.config.set(settings), ExitStack() as stack:
        if address is None:
            address = stack.enter_context(local_cluster())
        try:
            client = stack.enter_context(distributed.Client(address, timeout=CONNECT_TIMEOUT))
        except (OSError, TimeoutError, ValueError) as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ActstoreError(f"cannot connect to the dask scheduler at {address}: {why}") from None
        yield client


@contextmanager
def local_cluster(**options: Any) -> Iterator[Any]:
    """A ``LocalCluster`` of worker processes (``options``: its ``n_workers``, ``threads_per_worker``, ...) whose
    numba kernels run one thread per task (unless the dask config says otherwise): dask's threads already fill the
    cores, and workers get ``OMP/MKL_NUM_THREADS=1`` from ``distributed.nanny.pre-spawn-environ`` but not
    ``NUMBA_NUM_THREADS``. That one is set in the workers after they are spawned (``distributed.nanny.environ``):
    the Nanny sets its pre-spawn variables in this process's own environment and leaves them there, and numba here
    would read NUMBA_NUM_THREADS=1 at its next compile and refuse to run ("Cannot set NUMBA_NUM_THREADS to a
    different value once the threads have been launched"). What the Nanny left is put back when the cluster
    closes."""
    distributed = _import_distributed()
    environ = {**dask.config.get("distributed.nanny.environ", {}), "NUMBA_NUM_THREADS": "1"}
    left = [*dask.config.get("distributed.nanny.pre-spawn-environ", {}), "PYTHONHASHSEED"]
    saved = {name: os.environ.get(name) for name in left}
    try:
        with (
            dask.config.set({"distributed.nanny.environ": environ}),
            distributed.LocalCluster(processes=True, dashboard_address=":0", **options) as cluster,
        ):
            yield cluster
    finally:
        _restore(saved)


def _restore(environ: dict[str, str | None]) -> None:
    """Put these environment variables back as they were (None: unset)."""
    for name, value in environ.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _address(scheduler: str) -> str:
    """An address as given; a scheduler file's ``address`` (read here: distributed would wait for a missing one)."""
    if "://" in scheduler:
        return scheduler
    path = Path(scheduler)
    if not path.is_file():
        raise ActstoreError(f"no dask scheduler file at {path}: {USAGE}")
    try:
        return str(json.loads(path.read_text())["address"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ActstoreError(f"cannot read the address from the dask scheduler file {path} ({exc}): {USAGE}") from None


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ActstoreError("a dask cluster needs dask.distributed: pip install 'actstore[cluster]'") from None
    return distributed


def current_client() -> Any:
    """The distributed ``Client`` dask computes on now, or None (threads, or no distributed imported at all)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import Client

    owner = getattr(dask.base.get_scheduler(), "__self__", None)
    return owner if isinstance(owner, Client) else None


def shared(array: np.ndarray, chunks: tuple) -> da.Array:
    """``array`` as a dask-array argument of a computation, in ``chunks``. On a cluster it is scattered to the
    workers once: a numpy array inside the graph (a closure's, or ``from_array``'s) travels with every graph
    sent, 150 MB for a paper-scale baseline."""
    import dask.array as da

    client = current_client()
    if client is None:
        return da.from_array(array, chunks=chunks)
    return da.from_delayed(client.scatter(array), array.shape, array.dtype).rechunk(chunks)
