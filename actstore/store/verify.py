"""``actstore verify``: every ``zarr.json`` and every chunk a store should hold, checked; with ``repair``, what
``extract`` can recompute is marked for it, and what it cannot is said plainly.

What repair does, by what is damaged:
- an extraction's activation, score or prediction chunk, or its done marker → the block is marked not done;
- a train split's baseline or baseline sum → that seed's pass over the train split is marked to run again;
- an extraction's coordinates or array metadata → rewritten from its spec (the chunks are kept and re-checked);
- an extraction's label chunk → rewritten by the next ``extract`` of that split (from the same data);
- a group's own ``zarr.json`` or attributes (its spec) → the group is removed: ``extract``/``rank``/the analysis
  that made it makes it again; prompts cannot be recomputed and are left for the user to replace;
- the root ``zarr.json`` → rewritten.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore

from ..errors import ActstoreError, StoreFault
from ..specs import ExtractionSpec, from_attrs
from .integrity import metadata_of, seal_problems
from .layout import coordinates, expected_metadata, rewrite_metadata
from .schema import validate
from .attrs import new_root_attrs, put_attrs
from .store import Store

#: the groups of a store, by the path of any key inside them
_GROUP = re.compile(r"^(prompts/[^/]+|rankings/[^/]+|results/[^/]+/[^/]+|extractions/[^/]+/[^/]+(?:/decoder)?)/")
_KIND = {"prompts": "prompts", "rankings": "ranking", "results": "result", "extractions": "extraction"}


@dataclass(frozen=True)
class Damage:
    """One thing found missing or damaged, and what repair does (or did) about it."""

    group: str
    item: str
    problem: str  # missing | damaged
    action: str
    recomputable: bool = True


def verify_path(path: str | Path, *, repair: bool = False) -> list[dict]:
    """Check a store (its root ``zarr.json`` first, which ``Store`` needs to open) and every group in it."""
    root = [asdict(d) for d in _check_root(Path(path), repair)]
    if not repair:
        return root + verify(Store(path), repair=False)
    store = Store(path, mode="r+")
    with store.writing():
        return root + verify(store, repair=True)


def _check_root(path: Path, repair: bool) -> list[Damage]:
    meta = path / "zarr.json"
    if not path.is_dir() or not any(path.iterdir()):
        return []  # no store at all: Store says so
    try:
        attrs = json.loads(meta.read_bytes())["attributes"]
        validate("root", attrs, str(path))
        return []
    except (OSError, ValueError, KeyError, TypeError, StoreFault):
        pass
    if repair:
        _rewrite_root(path)
    return [Damage("/", "zarr.json", "damaged" if meta.exists() else "missing",
                   "rewritten (the store's creation time is lost)" if repair else "repair rewrites it")]


def _rewrite_root(path: Path) -> None:
    (path / "zarr.json").unlink(missing_ok=True)
    zarr.open_group(LocalStore(path), mode="a", zarr_format=3).attrs.put(new_root_attrs())


def verify(store: Store, *, repair: bool = False) -> list[dict]:
    """Every group of ``store`` checked, as a list of ``Damage`` dicts (empty: the store is sound)."""
    keys = set(sync(_list(store.zstore)))
    groups = sorted({m.group(1) for k in keys if (m := _GROUP.match(k))})
    found: list[Damage] = []
    for path in groups:
        found += _Checker(store, path, keys, repair).run()
    return [asdict(d) for d in found]


async def _list(zstore: zarr.abc.store.Store) -> list[str]:
    return [key async for key in zstore.list()]


class _Checker:
    """Checks one group: its metadata, then every chunk it should hold."""

    def __init__(self, store: Store, path: str, keys: set[str], repair: bool) -> None:
        self.store, self.path, self.keys, self.repair = store, path, keys, repair
        self.kind = _KIND[path.split("/", 1)[0]]
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
        try:
            json.loads(sync(self.store.zstore._store.get(key, default_buffer_prototype())).to_bytes())
        except ValueError:
            return "damaged"
        return None

    def _open_group(self) -> zarr.Group | None:
        """The group, if its own metadata and attributes are sound (else it is reported, and removed on repair)."""
        problem = self._meta_problem(f"{self.path}/zarr.json")
        if problem:
            self._lost(f"zarr.json", problem)
            return None
        group = self.store.root[self.path]
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
            self.found.append(Damage(self.path, item, problem, "cannot be recomputed: import the prompts again "
                                     "(actstore prompts import) or tune them again; then extract again", False))
            return
        redo = {"extraction": "the same actstore extract command makes it again",
                "ranking": f"actstore rank --task {self.path.split('/')[1].split(':')[0]} makes it again",
                "result": "the analysis that made it makes it again"}[self.kind]
        self.found.append(Damage(self.path, item, problem, ("group removed: " if self.repair else "repair removes the "
                                                           "group: ") + redo))
        if self.repair:
            sync(self.store.zstore.delete_dir(self.path))

    # ---- extraction groups: every array checked against the layout its spec implies

    def _extraction(self, group: zarr.Group) -> None:
        spec = from_attrs(ExtractionSpec, group.attrs["spec"])
        expected, scratch = expected_metadata(spec)
        usable = set()
        for name, meta in expected.items():
            problem = self._meta_problem(f"{self.path}/{name}/zarr.json")
            if problem is None and metadata_of(group[name]) != meta:
                problem = "damaged"
            if problem:
                self.found.append(Damage(self.path, f"{name}/zarr.json", problem,
                                         self._did("rewritten from the spec", "repair rewrites it from the spec")))
                if not self.repair:
                    continue
                rewrite_metadata(group, name, scratch)
            usable.add(name)
        if self.repair and any(d.item.endswith("zarr.json") for d in self.found):
            put_attrs(group, dict(group.attrs))  # the arrays' digest, as the spec says they are
        for name, values in coordinates(spec).items():
            if name in usable and self._bad_chunks(group[name]):
                self.found.append(Damage(self.path, f"coordinate {name}", "damaged",
                                         self._did("rewritten from the spec", "repair rewrites it from the spec")))
                if self.repair:
                    group[name][...] = values
        if "label" in usable and self._bad_chunks(group["label"]):
            self.found.append(Damage(self.path, "label", "damaged", "the next extract of this split rewrites it "
                                     "from the same data"))
        marked = len(self.found)  # what follows (done markers, blocks, baselines) is for extract to redo
        done = self._done(group, spec) if "done" in usable else None
        if done is None:
            return
        self._blocks(group, spec, done, usable)
        reset = self._baselines(group, spec, usable) if spec.split == "train" else []
        if self.repair and len(self.found) > marked:
            for s in reset:
                done[s] = False
            group["done"][...] = done
            attrs = dict(group.attrs)
            progress = {k: v for k, v in attrs.get("baseline_progress", {}).items()
                        if int(k) not in {spec.seeds[s] for s in reset}}
            put_attrs(group, {**attrs, **({"baseline_progress": progress} if spec.split == "train" else {}),
                              "stamp": {**attrs["stamp"], "state": "in_progress"}})

    def _done(self, group: zarr.Group, spec: ExtractionSpec) -> np.ndarray:
        """The done markers; a damaged one counts as not done, a missing one of a complete extraction is reported
        (repair marks both blocks to extract again)."""
        array, done = group["done"], np.zeros((len(spec.seeds), spec.n_blocks), bool)
        complete = group.attrs["stamp"]["state"] == "complete"
        for s, b in itertools.product(range(len(spec.seeds)), range(spec.n_blocks)):
            if f"{array.path}/{array.metadata.encode_chunk_key((s, b))}" not in self.keys and not complete:
                continue  # a block not extracted yet
            problem = self._chunk_problem(array, (s, b))
            if problem is None:
                done[s, b] = bool(array[s, b])
            elif problem == "damaged" or complete:
                self.found.append(Damage(self.path, f"done marker seed {spec.seeds[s]} block {b}", problem,
                                         self._did("block marked to extract again", "repair marks the block to "
                                                   "extract again")))
        return done

    def _blocks(self, group: zarr.Group, spec: ExtractionSpec, done: np.ndarray, usable: set[str]) -> None:
        """Every chunk of every done block; a block with a bad one is marked not done in ``done``."""
        names = [n for n in ("acts", "scores", "prediction") if n in usable]
        for s, b in zip(*np.nonzero(done)):
            for name in names:
                layers = range(spec.n_layers) if name == "acts" else [None]
                for layer in layers:
                    coords = (s, b, layer, 0, 0) if name == "acts" else (s, b, 0)[: group[name].ndim]
                    problem = self._chunk_problem(group[name], coords)
                    if problem:
                        where = f" layer {layer}" if name == "acts" else ""
                        self.found.append(Damage(self.path, f"{name} seed {spec.seeds[s]} block {b}{where}", problem,
                                                 self._did("block marked to extract again",
                                                           "repair marks the block to extract again")))
                        done[s, b] = False

    def _baselines(self, group: zarr.Group, spec: ExtractionSpec, usable: set[str]) -> list[int]:
        """Seeds whose baseline sum (the live slot) or baseline is missing or damaged."""
        reset = []
        progress = group.attrs.get("baseline_progress", {})
        for s, seed in enumerate(spec.seeds):
            entry = progress.get(str(seed))
            if not entry:
                continue
            wanted = [("baseline_sum", (entry["slot"], s, layer, 0, 0)) for layer in range(spec.n_layers)]
            if entry["examples"] == spec.n_examples:
                wanted += [("baseline", (s, layer, 0, 0)) for layer in range(spec.n_layers)]
            bad = [(name, c) for name, c in wanted if name in usable and self._chunk_problem(group[name], c)]
            bad += [(name, None) for name in ("baseline_sum", "baseline") if name not in usable]
            if bad:
                self.found.append(Damage(self.path, f"{bad[0][0]} seed {seed}", "damaged",
                                         self._did("the seed's train pass marked to run again",
                                                   "repair marks the seed's train pass to run again")))
                reset.append(s)
        return reset

    # ---- prompts, rankings, results: every chunk of every array

    def _whole_group(self, group: zarr.Group) -> None:
        names = sorted({k[len(self.path) + 1:].split("/")[0] for k in self.keys if k.startswith(self.path + "/")}
                       - {"zarr.json"})
        for name in names:
            problem = self._meta_problem(f"{self.path}/{name}/zarr.json")
            if problem:
                self._lost(f"{name}/zarr.json", problem)
                return
        if "array metadata" in seal_problems_safe(group):
            self._lost("array metadata (dtype, shape or codecs edited)", "damaged")
            return
        for name in names:
            if self._bad_chunks(group[name]):
                self._lost(f"array {name}", "damaged")
                return

    # ---- chunks

    def _chunk_problem(self, array: zarr.Array, coords: tuple[int, ...]) -> str | None:
        key = f"{array.path}/{array.metadata.encode_chunk_key(coords)}"
        if key not in self.keys:
            return "missing"
        selection = tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, array.chunks))
        try:
            array[selection]
        except StoreFault:
            return "damaged"
        return None

    def _bad_chunks(self, array: zarr.Array) -> bool:
        grid = [range(-(-size // chunk)) for size, chunk in zip(array.shape, array.chunks)]
        return any(self._chunk_problem(array, coords) for coords in itertools.product(*grid))

    def _did(self, done: str, todo: str) -> str:
        return done if self.repair else todo


def seal_problems_safe(group: zarr.Group) -> list[str]:
    """``seal_problems``, with an unreadable array's metadata counted as a metadata problem."""
    try:
        return seal_problems(group)
    except StoreFault:
        return ["array metadata"]

