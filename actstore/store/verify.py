"""``actstore verify``: every ``zarr.json`` and every chunk a store should hold, checked; with ``repair``, what
``extract`` can recompute is marked for it, and what it cannot is said plainly.

What repair does, by what is damaged:
- an extraction's activation, score or prediction chunk, or its done marker → the block is marked not done;
- a train segment's exact sum or its marker → the segment is marked to extract again;
- a train split's baseline → the next ``extract`` rewrites it from the segment sums;
- an extraction's coordinates or array metadata → rewritten from its spec (the chunks are kept and re-checked);
- an extraction's label chunk → rewritten by the next ``extract`` of that split (from the same data);
- a group's own ``zarr.json`` or attributes (its spec) → the group is removed: ``extract``/``rank``/the analysis
  that made it makes it again; prompts cannot be recomputed and are left for the user to replace;
- the root ``zarr.json`` → rewritten.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from ..errors import ActstoreError, StoreFault
from ..specs import ExtractionSpec, from_attrs
from .attrs import consolidate, is_complete, new_root_attrs, put_attrs, vanished
from .backends import Backend, StoreLocation, open_backend
from .integrity import metadata_of, seal_problems, usable_metadata, writable
from .layout import block_chunks, coordinates, example_arrays, expected_metadata, rewrite_metadata
from .members import array_in, group_in, json_object, values_in
from .paths import group_of, kind_of
from .schema import validate
from .store import Store, any_key

if TYPE_CHECKING:
    from zarr.abc.store import Store as ZarrStore


@dataclass(frozen=True)
class Damage:
    """One thing found missing or damaged, and what repair does (or did) about it."""

    group: str
    item: str
    problem: str  # missing | damaged | misplaced (valid data, not the chunk written at its key)
    action: str
    recomputable: bool = True


def verify_path(location: str | Path | StoreLocation, *, repair: bool = False) -> list[dict[str, Any]]:
    """Check a store (its root ``zarr.json`` first, which ``Store`` needs to open) and every group in it."""
    backend = open_backend(location)
    root = [asdict(d) for d in _check_root(backend, repair)]
    if not repair:
        return root + verify(Store(backend), repair=False)
    store = Store(backend, mode="r+")
    with store.writing():
        return root + verify(store, repair=True)


def _check_root(backend: Backend, repair: bool) -> list[Damage]:
    raw = backend.zarr_store(read_only=True)
    there = backend.exists()
    if not there and not any_key(raw):
        return []  # no store at all: Store says so
    meta = sync(raw.get("zarr.json", default_buffer_prototype())) if there else None
    if meta is not None:
        try:
            validate("root", json.loads(meta.to_bytes())["attributes"], backend.url)
            return []
        except (OSError, ValueError, KeyError, TypeError, StoreFault):
            pass
    if repair:
        _rewrite_root(backend.zarr_store(read_only=False))
    return [
        Damage(
            "/",
            "zarr.json",
            "missing" if meta is None else "damaged",
            "rewritten (the store's creation time is lost)" if repair else "repair rewrites it",
        )
    ]


def _rewrite_root(zstore: ZarrStore) -> None:
    sync(zstore.delete("zarr.json"))
    zarr.open_group(zstore, mode="a", zarr_format=3).attrs.put(new_root_attrs())


def verify(store: Store, *, repair: bool = False) -> list[dict[str, Any]]:
    """Every group of ``store`` checked, as a list of ``Damage`` dicts (empty: the store is sound)."""
    keys = set(sync(_list(store.zstore)))
    groups = sorted({g for k in keys if (g := group_of(k))})
    found: list[Damage] = []
    for path in groups:
        found += _Checker(store, path, keys, repair).run()
    found += [
        Damage(
            path,
            "listed in the consolidated metadata",
            "missing",
            "the listing "
            + ("was rewritten" if repair else "is rewritten by repair")
            + "; the command that made it makes it again",
        )
        for path in vanished(store.zstore)
    ]
    if repair:
        consolidate(store.zstore)
    return [asdict(d) for d in found]


def in_progress(location: str | Path | StoreLocation) -> list[dict[str, Any]]:
    """The extractions still being written (or interrupted): what of them is stored is checked, and their blocks
    not marked done yet are not problems but work to do. Damaged groups are left to ``verify`` to report."""
    store = Store(open_backend(location))
    paths = sorted({g for k in sync(_list(store.zstore)) if (g := group_of(k))})
    found: list[dict[str, Any]] = []
    for path in (p for p in paths if kind_of(p) == "extraction"):
        try:
            group = group_in(store.root, path)
            if "spec" in group.attrs and not is_complete(group):
                done = values_in(group, "done")
                found.append({"group": path, "blocks_done": int(done.sum()), "blocks": int(done.size)})
        except (StoreFault, KeyError):
            continue
    return found


async def _list(zstore: ZarrStore) -> list[str]:
    return [key async for key in zstore.list()]


class _Checker:
    """Checks one group: its metadata, then every chunk it should hold."""

    def __init__(self, store: Store, path: str, keys: set[str], repair: bool) -> None:
        self.store, self.path, self.keys, self.repair = store, path, keys, repair
        self.kind = kind_of(path)
        self.found: list[Damage] = []

    def run(self) -> list[Damage]:
        group = self._open_group()
        if group is None:
            return self.found
        if self.kind == "extraction":
            self._extraction(group)
        else:
            self._whole_group(group)
        return self.found

    # ---- metadata

    def _meta_problem(self, key: str) -> str | None:
        if key not in self.keys:
            return "missing"
        stored = sync(self.store.zstore._store.get(key, default_buffer_prototype()))
        if stored is None:  # removed since it was listed
            return "missing"
        return None if usable_metadata(stored.to_bytes()) else "damaged"

    def _open_group(self) -> zarr.Group | None:
        """The group, if its own metadata and attributes are sound (else it is reported, and removed on repair)."""
        problem = self._meta_problem(f"{self.path}/zarr.json")
        if problem:
            self._lost("zarr.json", problem)
            return None
        group = self.store.root[self.path]
        if isinstance(group, zarr.Array):  # its zarr.json replaced by an array's: readers refuse it (``group_in``)
            self._lost("zarr.json", "damaged")
            return None
        if "spec" not in group.attrs:
            return None  # never finished being created: holds nothing, is never read
        attrs_ok = "attributes" not in seal_problems_safe(group)
        try:
            validate(self.kind, dict(group.attrs), self.path)
        except ActstoreError:  # a spec that breaks the schema is damage like any other
            attrs_ok = False
        if not attrs_ok:
            self._lost("attributes (the spec)", "damaged")
            return None
        return group

    def _lost(self, item: str, problem: str) -> None:
        """A group whose own metadata is gone: everything in it is unreadable."""
        if self.kind == "prompts":
            self.found.append(
                Damage(
                    self.path,
                    item,
                    problem,
                    "cannot be recomputed: import the prompts again "
                    "(actstore prompts import) or tune them again; then extract again",
                    False,
                )
            )
            return
        redo = {
            "extraction": "the same actstore extract command makes it again",
            "ranking": f"actstore rank --task {self.path.split('/')[1].split(':')[0]} makes it again",
            "result": "the analysis that made it makes it again",
        }[self.kind]
        self.found.append(
            Damage(
                self.path, item, problem, ("group removed: " if self.repair else "repair removes the group: ") + redo
            )
        )
        if self.repair:
            sync(self.store.zstore.delete_dir(self.path))

    # ---- extraction groups: every array checked against the layout its spec implies

    def _extraction(self, group: zarr.Group) -> None:
        spec = from_attrs(ExtractionSpec, json_object(group, "spec"))
        expected, scratch = expected_metadata(spec)
        usable = set()
        for name, meta in expected.items():
            problem = self._meta_problem(f"{self.path}/{name}/zarr.json")
            if problem is None and (not isinstance(node := group[name], zarr.Array) or metadata_of(node) != meta):
                problem = "damaged"
            if problem:
                self.found.append(
                    Damage(
                        self.path,
                        f"{name}/zarr.json",
                        problem,
                        self._did("rewritten from the spec", "repair rewrites it from the spec"),
                    )
                )
                if not self.repair:
                    continue
                rewrite_metadata(group, name, scratch)
            usable.add(name)
        if self.repair and any(d.item.endswith("zarr.json") for d in self.found):
            put_attrs(group, dict(group.attrs))  # the arrays' digest, as the spec says they are
        for name, values in coordinates(spec).items():
            if name in usable and (problem := self._bad_chunks(array_in(group, name))):
                self.found.append(
                    Damage(
                        self.path,
                        f"coordinate {name}",
                        problem,
                        self._did("rewritten from the spec", "repair rewrites it from the spec"),
                    )
                )
                if self.repair:
                    writable(array_in(group, name))[...] = values
        for name in example_arrays(spec):
            if name in usable and (problem := self._bad_chunks(array_in(group, name))):
                self.found.append(
                    Damage(self.path, name, problem, "the next extract of this split rewrites it from the same data")
                )
        marked = len(self.found)  # what follows (markers, blocks, segments, baselines) is for extract to redo
        complete = is_complete(group)
        if "done" not in usable:
            return
        done = self._markers(array_in(group, "done"), "block", spec, complete)
        self._blocks(group, spec, done, usable)
        segments = None
        if spec.split == "train" and {"segment_done", "baseline_parts", "baseline"} <= usable:
            segments = self._markers(array_in(group, "segment_done"), "segment", spec, complete)
            self._segments(group, spec, segments, complete)
        if self.repair and len(self.found) > marked:
            writable(array_in(group, "done"))[...] = done
            if segments is not None:
                writable(array_in(group, "segment_done"))[...] = segments
            attrs = dict(group.attrs)
            put_attrs(group, {**attrs, "stamp": {**json_object(group, "stamp"), "state": "in_progress"}})

    def _markers(self, array: zarr.Array[Any], unit: str, spec: ExtractionSpec, complete: bool) -> np.ndarray:
        """Done markers (of blocks or train segments); a damaged one counts as not done, a missing one of a
        complete extraction is reported (repair marks both to extract again)."""
        marked = np.zeros(array.shape, bool)
        for s, u in itertools.product(*map(range, array.shape)):
            if f"{array.path}/{array.metadata.encode_chunk_key((s, u))}" not in self.keys and not complete:
                continue  # not extracted yet
            problem = self._chunk_problem(array, (s, u))
            if problem is None:
                marked[s, u] = bool(array[s, u])
            elif problem == "damaged" or complete:
                self.found.append(
                    Damage(
                        self.path, f"{array.basename} marker seed {spec.seeds[s]} {unit} {u}", problem, self._redo(unit)
                    )
                )
        return marked

    def _redo(self, unit: str) -> str:
        return self._did(f"{unit} marked to extract again", f"repair marks the {unit} to extract again")

    def _blocks(self, group: zarr.Group, spec: ExtractionSpec, done: np.ndarray, usable: set[str]) -> None:
        """Every chunk of every done block, read on the command's dask scheduler (the bulk of a store); a block
        with a bad one is marked not done in ``done``."""
        wanted = []  # (array, chunk coords, seed index, block, what it is)
        for s, b in zip(*np.nonzero(done)):
            for name, coords in block_chunks(spec, s, b):
                if name in usable:
                    where = f" layer {coords[2]}" if name in ("acts", "bits") else ""
                    wanted.append(
                        (array_in(group, name), coords, s, b, f"{name} seed {spec.seeds[s]} block {b}{where}")
                    )
        there = [self._exists(self._key(array, coords)) for array, coords, *_ in wanted]
        present = [w for w, stored in zip(wanted, there) if stored]
        problems = _problems(self.store.backend, [(a.path, coords) for a, coords, *_ in present])
        bad = [(w, "missing") for w, stored in zip(wanted, there) if not stored]
        bad += [(w, problem) for w, problem in zip(present, problems) if problem]
        for (_, _, s, b, what), problem in bad:
            self.found.append(Damage(self.path, what, problem, self._redo("block")))
            done[s, b] = False

    def _segments(self, group: zarr.Group, spec: ExtractionSpec, segments: np.ndarray, complete: bool) -> None:
        """The exact sums of every done train segment (a bad one marks its segment not done), and the baseline of
        every seed whose segments are all done (the next extract rewrites a bad one from the sums; while the
        extraction runs, one not written yet is in progress)."""
        for s, g in zip(*np.nonzero(segments)):
            for layer in range(spec.n_layers):
                problem = self._chunk_problem(array_in(group, "baseline_parts"), (s, g, layer, 0, 0))
                if problem:
                    self.found.append(
                        Damage(
                            self.path,
                            f"baseline_parts seed {spec.seeds[s]} segment {g} layer {layer}",
                            problem,
                            self._redo("segment"),
                        )
                    )
                    segments[s, g] = False
                    break
        for s in np.nonzero(segments.all(axis=1))[0]:
            problem = next(
                filter(
                    None,
                    (
                        self._chunk_problem(array_in(group, "baseline"), (int(s), layer, 0, 0))
                        for layer in range(spec.n_layers)
                    ),
                ),
                None,
            )
            if problem and not (problem == "missing" and not complete):
                self.found.append(
                    Damage(
                        self.path,
                        f"baseline seed {spec.seeds[s]}",
                        problem,
                        "the next extract of the train split rewrites it from the segment sums",
                    )
                )

    # ---- prompts, rankings, results: every chunk of every array

    def _whole_group(self, group: zarr.Group) -> None:
        names = sorted(
            {k[len(self.path) + 1 :].split("/")[0] for k in self.keys if k.startswith(self.path + "/")} - {"zarr.json"}
        )
        for name in names:
            problem = self._meta_problem(f"{self.path}/{name}/zarr.json")
            if problem:
                self._lost(f"{name}/zarr.json", problem)
                return
        if "array metadata" in seal_problems_safe(group):
            self._lost("array metadata (dtype, shape or codecs edited)", "damaged")
            return
        for name in names:
            if problem := self._bad_chunks(array_in(group, name)):
                self._lost(f"array {name}", problem)
                return

    # ---- chunks

    @staticmethod
    def _key(array: zarr.Array[Any], coords: tuple[int, ...]) -> str:
        return f"{array.path}/{array.metadata.encode_chunk_key(coords)}"

    def _exists(self, key: str) -> bool:
        """In the listing, or written since: a block marked done after the listing was taken has its chunks."""
        return key in self.keys or sync(self.store.zstore.exists(key))

    def _chunk_problem(self, array: zarr.Array[Any], coords: tuple[int, ...]) -> str | None:
        return read_problem(array, coords) if self._exists(self._key(array, coords)) else "missing"

    def _bad_chunks(self, array: zarr.Array[Any]) -> str | None:
        """The first problem of any chunk of ``array`` (missing, damaged or misplaced), None when all are sound."""
        grid = [range(-(-size // chunk)) for size, chunk in zip(array.shape, array.chunks)]
        return next(filter(None, (self._chunk_problem(array, coords) for coords in itertools.product(*grid))), None)

    def _did(self, done: str, todo: str) -> str:
        return done if self.repair else todo


#: chunks one dask task reads back (each task opens the store read-only, on a worker of any scheduler)
BATCH = 64


def _problems(backend: Backend, chunks: list[tuple[str, tuple[int, ...]]]) -> list[str | None]:
    """What is wrong with each (array path, chunk coordinates) when read back (``read_problem``), read in batches
    on the dask scheduler in use (``scheduler.using``: threads by default, or a cluster)."""
    batches = [chunks[i : i + BATCH] for i in range(0, len(chunks), BATCH)]
    return [
        problem
        for done in dask.compute(*[dask.delayed(_read_back)(backend, batch) for batch in batches])
        for problem in done
    ]


def _read_back(backend: Backend, chunks: list[tuple[str, tuple[int, ...]]]) -> list[str | None]:
    root = Store(backend).root
    return [read_problem(array_in(root, path), coords) for path, coords in chunks]


def read_problem(array: zarr.Array[Any], coords: tuple[int, ...]) -> str | None:
    """What reading one stored chunk back finds: None, or ``StoreFault.problem``: damaged (its CRC32C, a
    truncation), misplaced (not the chunk recorded for its key), missing (its manifest lost)."""
    try:
        array[tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, array.chunks))]
    except StoreFault as fault:
        return fault.problem
    return None


def seal_problems_safe(group: zarr.Group) -> list[str]:
    """``seal_problems``, with an unreadable array's metadata counted as a metadata problem."""
    try:
        return seal_problems(group)
    except StoreFault:
        return ["array metadata"]
