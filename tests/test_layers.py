"""The house rules that CI's lint does not see: no import circles (lint-imports checks the layers), and importing
actstore changes nothing outside its own objects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def test_no_module_imports_itself_through_others():
    """Every import executed at run time (TYPE_CHECKING ones are only read by type checkers) runs one way."""
    sys.path.insert(0, str(ROOT))
    try:
        graph = grimp.build_graph("actstore", "cli", exclude_type_checking_imports=True)
    finally:
        sys.path.remove(str(ROOT))
    circles = {
        tuple(sorted({module, *chain}))
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if (chain := graph.find_shortest_chain(importer=imported, imported=module))
    }
    assert not circles, circles


#: a user's own zarr array and dask settings, described: what importing and using actstore must leave as they were
USER = """
import json, sys, dask, numpy as np, zarr
from pathlib import Path
from zarr.registry import get_codec_class

def user():
    store = zarr.storage.MemoryStore()
    a = zarr.create_array(store, shape=(4,), chunks=(2,), dtype="int32", fill_value=0,
                          compressors=[zarr.codecs.Crc32cCodec()])
    a[...] = np.array([0, 0, 1, 2])  # the first chunk equals the fill value
    key = "c/1"
    raw = bytearray(zarr.core.sync.sync(store.get(key, zarr.core.buffer.default_buffer_prototype())).to_bytes())
    raw[0] ^= 1
    zarr.core.sync.sync(store.set(key, zarr.core.buffer.cpu.Buffer.from_bytes(bytes(raw))))
    try:
        zarr.open_array(store, mode="r")[...]
        damaged = "read"
    except Exception as e:
        damaged = type(e).__module__ + "." + type(e).__qualname__
    return {"chunks": sorted(k for k in zarr.core.sync.sync(_keys(store)) if k.startswith("c/")),
            "crc32c": get_codec_class("crc32c").__qualname__, "damaged": damaged,
            "zarr": json.dumps(zarr.config.get("array"), sort_keys=True, default=str),
            "dask": json.dumps(dask.config.config, sort_keys=True, default=str)}

async def _keys(store):
    return [k async for k in store.list()]

before = user()
import actstore, actstore.store, actstore.ranking, actstore.report, actstore.stats
from actstore.store import Store
from actstore.prompts import PromptSet
from actstore.specs import ModelSpec
from actstore.stats import activation_stats  # noqa: F401
model = ModelSpec(name="tiny", revision="r1", architecture="bert", scoring="mlm_head", n_layers=3, n_neurons=40,
                  hidden=4, max_positions=64)
s = Store(sys.argv[1], mode="a")
with s.writing():  # a seed array [0]: one chunk equal to its fill value, which actstore writes all the same
    prompts = PromptSet.random((0,), 2, 4)
    s.put_prompts("toy", prompts.vectors, prompts.spec(model))
assert (Path(sys.argv[1]) / "prompts/toy/seed/c/0").is_file()
np.testing.assert_array_equal(Store(sys.argv[1]).prompts("toy").vectors, prompts.vectors)
after = user()
print(json.dumps({"before": before, "after": after}))
"""


def test_importing_and_using_actstore_leaves_a_users_zarr_and_dask_as_they_were(tmp_path):
    """zarr's global config (write_empty_chunks), its crc32c codec and dask's config are the user's: actstore's
    arrays get their settings where actstore writes and reads them."""
    out = subprocess.run(
        [sys.executable, "-c", USER, str(tmp_path / "s.zarr")], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["before"] == seen["after"]
    assert seen["before"]["chunks"] == ["c/1"]  # zarr's default: the empty chunk is not written


def test_no_zarr_group_leaves_the_storage_layer():
    """What ``Store`` and its readers hand out is a spec, values, a Dataset or one array: never a zarr group, which
    would let a consumer walk the store's layout (``actstore.store.paths`` keeps that in one place)."""
    import inspect

    from actstore.store import ExtractionReader, RankingReader, Store

    members = {
        f"{cls.__name__}.{name}": member.fget if isinstance(member, property) else member
        for cls in (Store, ExtractionReader, RankingReader)
        for klass in reversed(cls.__mro__)  # Store's methods live in one class per job (store/store.py)
        for name, member in vars(klass).items()
        if not name.startswith("_")
    }
    returns = {
        name: str(inspect.signature(member).return_annotation) for name, member in members.items() if callable(member)
    }
    assert "Store.extraction_reader" in returns and "ExtractionReader.array" in returns
    leaks = {name: hint for name, hint in returns.items() if "Group" in hint}
    assert not leaks, leaks


def test_every_package_of_the_tree_is_one_pyproject_installs():
    """pyproject lists its packages by name (cli/ installs as actstore.cli): a new package left off the list is
    missing from a wheel, while an editable install (the tests') still finds it."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "actstore").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found and found <= listed, found - listed
