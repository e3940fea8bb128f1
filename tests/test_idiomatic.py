"""An idiomatic store (schema version 3): plain xarray opens every group without a warning, coordinates come back as
coordinates, blocks not extracted yet read as NaN, no name shadows xarray or Python; and ``actstore upgrade`` makes a
store written by version 2 (tests/fixtures/store-v2.tar.gz, written by commit e9f2532) exactly what this version
writes, crash-safely."""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.errors import ZarrUserWarning

import actstore.store.attrs as attrs_module
from actstore import tasks
from actstore.errors import ActstoreError
from actstore.extraction import ExtractOptions, extract
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.ranking import rank
from actstore.store import Store, open_store
from actstore.store.attrs import consolidate, is_consolidated
from actstore.store.integrity import StrictStore
from actstore.store.migrate import upgrade_path
from actstore.store.verify import verify
from actstore.suppression import SuppressOptions, suppress
from helpers import SENTIMENT, invoke, one_error_line, run_toy, stored_arrays, toy_split

FIXTURE = Path(__file__).parent / "fixtures" / "store-v2.tar.gz"
PART = tasks.custom_task("part", ["sentence"], "label", ["negative", "positive"], ["negative", "positive"])
#: what a file of a store may be: a zarr.json or a chunk key (zarr v3's default encoding), nothing else
ZARR_FILE = re.compile(r"(?:.*/)?(?:zarr\.json|c(?:/\d+)+)$")


def v2_store(folder: Path) -> Path:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(folder, filter="data")
    return folder / "v2.zarr"


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """The fixture store upgraded by the CLI, and every array it held before (read with plain zarr)."""
    path = v2_store(tmp_path_factory.mktemp("upgraded"))
    with pytest.warns(ZarrUserWarning, match="Object at .actstore.lock is not recognized"):  # version 2's lock file
        before = stored_arrays(path)
    result = invoke("upgrade", path)
    assert result.exit_code == 0 and "10 group(s) upgraded" in result.output, result.output
    return path, before


@pytest.fixture(scope="module")
def fresh(tiny_model_dir, data_dir, tmp_path_factory) -> Path:
    """What make_v2_store.py writes, written by this version."""
    path = tmp_path_factory.mktemp("fresh") / "v3.zarr"
    model_dir = tiny_model_dir("t5_gated")
    store = run_toy(path, model_dir, data_dir, n_train=8, n_dev=8)
    rank(store, "toy")
    model = load_model(str(model_dir), device="cpu")
    with store.writing():
        suppress(
            store,
            model,
            SENTIMENT,
            toy_split(data_dir, "validation", 8),
            SuppressOptions(percents=(0.0, 50.0), mode="zero", random_draws=2),
            batch_size=4,
        )
        prompts = PromptSet.stored(store, "toy")
        store.put_prompts("part", prompts.vectors, prompts.spec(model.spec))
        split = tasks.load_split(PART, "validation", data_files={"validation": data_dir / "sst2" / "dev.tsv"}).sample(8)

        def stop(examples: int, nbytes: int) -> None:
            raise KeyboardInterrupt  # after the first block

        with pytest.raises(KeyboardInterrupt):
            extract(store, model, PART, split, prompts, ExtractOptions(batch_size=4, block=4), progress=stop)
    return path


def check_plain_xarray(path: Path) -> None:
    """Everything the issue asks of plain xarray, with every warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tree = xr.open_datatree(path, engine="zarr")
        groups = [node.path.lstrip("/") for node in tree.subtree if node.has_data]
        assert {
            "rankings/toy",
            "extractions/toy/validation",
            "decoder_extractions/toy/validation",
            "results/suppression/toy@toy",
            "prompts/toy",
        } <= set(groups)
        for group in groups:
            xr.open_zarr(path, group=group)
        ranking = xr.open_zarr(path, group="rankings/toy").load()
        assert "layer_stack" in ranking.coords and "stack" not in ranking.variables
        assert ranking.predictivity.where(ranking.layer_stack == "decoder", drop=True).sizes["layer"] == 3
        assert "layer_stack" in xr.open_zarr(path, group="results/suppression/toy@toy").coords
        part = xr.open_zarr(path, group="extractions/part/validation")
        done = part.done.values  # (seed, block) of 4 examples: only seed 0's first block is in
        assert done.tolist() == [[True, False], [False, False]]
        acts, scores = part.acts.values, part.scores.sel(label_class=1).values
        assert not np.isnan(acts[0, :4]).any() and np.isnan(acts[0, 4:]).all() and np.isnan(acts[1]).all()
        assert not np.isnan(scores[0, :4]).any() and np.isnan(scores[0, 4:]).all()
        assert (part.prediction.values[0, 4:] == -1).all()  # the integer sentinel
        ranked = open_store(path).ranking("toy")
        assert ranked.predictivity.where(ranked.layer_stack == "decoder", drop=True).sizes["layer"] == 3
    assert is_consolidated(Store(path).zstore)  # every group's and array's metadata as its zarr.json says
    files = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
    assert files and all(ZARR_FILE.fullmatch(f) for f in files), [f for f in files if not ZARR_FILE.fullmatch(f)]


def test_a_store_this_version_writes_is_idiomatic(fresh):
    check_plain_xarray(fresh)
    assert (fresh.parent / "v3.zarr.lock").is_file()  # the writer lock lives beside the store


def test_a_version_2_store_is_refused_in_one_line_that_says_upgrade(tmp_path):
    path = v2_store(tmp_path)
    one_error_line(invoke("info", path), "schema version 2", f"run actstore upgrade {path}")
    one_error_line(invoke("verify", path), "run actstore upgrade")


def test_an_upgraded_store_is_idiomatic(upgraded):
    path, _ = upgraded
    check_plain_xarray(path)


def test_an_upgraded_store_has_the_metadata_this_version_writes(upgraded, fresh):
    """Same groups, same array names, dimensions, fill values, codecs and attributes as a store written now (arrays
    this version adds, such as bits, aside)."""

    def metadata(path: Path) -> dict[str, dict]:
        found = {}
        root = zarr.open_group(path, mode="r", use_consolidated=False)
        for name, node in root.members(max_depth=None):
            if isinstance(node, zarr.Array):
                found[name] = node.metadata.to_dict()
        return found

    old, new = metadata(upgraded[0]), metadata(fresh)
    assert set(old) <= set(new), set(old) - set(new)
    assert {name: new[name] for name in old} == old


def test_upgrade_keeps_every_value_and_the_ranking(upgraded):
    path, before = upgraded
    after = stored_arrays(path)

    def renamed(key: str) -> str:
        key = re.sub(r"^extractions/([^/]+)/([^/]+)/decoder/", r"decoder_extractions/\1/\2/", key)
        names = {"/class": "/label_class", "/stack": "/layer_stack"}
        return re.sub(r"/(class|stack)$", lambda m: names[m.group(0)], key)

    assert {renamed(k) for k in before} == set(after)
    store = open_store(path)
    for key, values in before.items():
        if not key.startswith("extractions/part"):  # complete groups: every chunk there, so no fill value read
            np.testing.assert_array_equal(after[renamed(key)], values, err_msg=key)
    assert verify(store) == []
    stored = store.ranking("toy")
    again = rank(Store(path, mode="r+"), "toy")  # the same numbers from the upgraded activations
    for name in ("accuracy", "predictivity", "rank_in_layer", "rank_global", "layer_stack"):
        np.testing.assert_array_equal(again[name].values, stored[name].values, err_msg=name)
    np.testing.assert_array_equal(stored["predictivity"].values, before["rankings/toy/predictivity"])


class Killed(BaseException):
    """The process dying between two writes."""


def test_upgrade_killed_anywhere_finishes_when_run_again(tmp_path, monkeypatch, upgraded):
    writes = {"left": None, "count": 0}
    real_set, real_delete = StrictStore.set, StrictStore.delete_dir

    async def counted_set(self, key, value):
        await write_allowed()
        return await real_set(self, key, value)

    async def counted_delete(self, prefix):
        await write_allowed()
        return await real_delete(self, prefix)

    async def write_allowed():
        writes["count"] += 1
        if writes["left"] is not None:
            writes["left"] -= 1
            if writes["left"] < 0:
                raise Killed

    monkeypatch.setattr(StrictStore, "set", counted_set)
    monkeypatch.setattr(StrictStore, "delete_dir", counted_delete)
    upgrade_path(v2_store(tmp_path / "count"))
    total = writes["count"]
    assert total > 100  # every zarr.json, the renamed arrays' and moved groups' chunks, the deletions
    reference = stored_arrays(upgraded[0])
    for cut in sorted({1, 2, total // 7, total // 3, total // 2, 2 * total // 3, total - 3, total - 1}):
        path = v2_store(tmp_path / str(cut))
        writes["left"] = cut
        with pytest.raises(Killed):
            upgrade_path(path)
        writes["left"] = None
        root = json.loads((path / "zarr.json").read_text())["attributes"]["actstore"]
        if root["schema_version"] == 2 or root.get("upgrading"):
            with pytest.raises(ActstoreError, match="run actstore upgrade"):  # half-upgraded: refused, never read
                open_store(path)
        else:  # the flag goes only once every group is done: killed while consolidating
            assert verify(open_store(path)) == [], cut
        upgrade_path(path)
        assert verify(open_store(path)) == [], cut
        after = stored_arrays(path)
        assert set(after) == set(reference), cut
        for key, values in reference.items():
            np.testing.assert_array_equal(after[key], values, err_msg=f"{cut}: {key}")
        check_plain_xarray(path)


@pytest.mark.parametrize("damage", ["ranking dtype edited", "acts zarr.json truncated"])
def test_damage_older_than_the_upgrade_is_still_reported_and_repaired(tmp_path, damage):
    path = v2_store(tmp_path)
    acts = json.loads((path / "extractions" / "toy" / "validation" / "acts" / "zarr.json").read_text())
    before = zarr.open_array(path / "extractions" / "toy" / "validation" / "acts", mode="r")[...]
    if damage == "ranking dtype edited":  # parses, but the group's digest catches it
        meta_file = path / "rankings" / "toy" / "predictivity" / "zarr.json"
        meta_file.write_text(meta_file.read_text().replace('"float64"', '"float32"'))
        group = "rankings/toy"
    else:
        meta_file = path / "extractions" / "toy" / "validation" / "acts" / "zarr.json"
        meta_file.write_text(json.dumps(acts)[:100])
        group = "extractions/toy/validation/acts"
    result = invoke("upgrade", path)
    assert result.exit_code == 0 and f"{group}: damaged" in result.output and "actstore verify" in result.output
    assert "damaged before the upgrade: run actstore verify" in result.output, result.output
    found = verify(open_store(path))
    assert found and all(d["group"] in group for d in found), found
    assert invoke("verify", path, "--repair").exit_code == 0
    if damage == "ranking dtype edited":  # removed, for rank to make again
        assert "toy" not in open_store(path).ranked_tasks()
    else:  # the metadata rewritten from the spec, the chunks kept
        assert verify(open_store(path)) == []
        np.testing.assert_array_equal(open_store(path).extraction("toy")["acts"].values, before)
    check = xr.open_zarr(path, group="extractions/toy/validation")
    assert "label_class" in check.dims and "class" not in check.variables


def test_consolidated_metadata_catches_up_with_a_concurrent_writer(upgraded, monkeypatch, tmp_path):
    """Another writer creates a group after this one listed the hierarchy, and this one writes its older listing
    last: the check after writing sees the difference and consolidates again."""
    path = v2_store(tmp_path)
    upgrade_path(path)
    real = zarr.consolidate_metadata
    calls = []

    def racing(store, *args, **kwargs):
        written = real(store, *args, **kwargs)
        if not calls:  # the other writer's group lands right after this listing was written
            zarr.open_group(path, mode="a", use_consolidated=False).require_group("results/other/x").attrs.put({"a": 1})
        calls.append(1)
        return written

    monkeypatch.setattr(attrs_module.zarr, "consolidate_metadata", racing)
    consolidate(Store(path, mode="r+").zstore)
    assert len(calls) == 2
    root = zarr.open_consolidated(path)
    assert root.metadata.consolidated_metadata.flattened_metadata["results/other/x"].attributes == {"a": 1}


def test_the_only_writer_consolidates_without_reading_back(monkeypatch, tmp_path):
    """An exclusive lock on a disk leaves no writer to race with: the copy is written once, and it is current; the
    ranks of a launch (a shared lock) and a writer holding no lock still read it back and compare."""
    store = Store(tmp_path / "s.zarr", mode="a")
    checks = []
    monkeypatch.setattr(attrs_module, "is_consolidated", lambda zstore: checks.append(1) or is_consolidated(zstore))
    result = xr.Dataset({"value": ("i", np.arange(3.0))}, coords={"i": [0, 1, 2]})
    with store.writing():
        assert store.zstore.sole_writer
        store.put_result("curve", "a", {"n": 1}, result)
    assert checks == [] and not store.zstore.sole_writer and is_consolidated(store.zstore)
    assert zarr.open_consolidated(store.path).metadata.consolidated_metadata.flattened_metadata["results/curve/a/value"]
    with store.writing(shared=True):
        assert not store.zstore.sole_writer
        store.put_result("curve", "b", {"n": 2}, result)
    store.put_result("curve", "c", {"n": 3}, result)
    assert len(checks) == 3 and is_consolidated(store.zstore)  # b's write and the lock's release; c's write


def test_the_writer_lock_is_beside_the_store_and_still_exclusive(upgraded, tmp_path):
    path = v2_store(tmp_path)
    (path / ".actstore.lock").touch()
    with open(path / ".actstore.lock") as legacy:
        fcntl.flock(legacy, fcntl.LOCK_SH)  # a version 2 process still writing
        with pytest.raises(ActstoreError, match="being written by another actstore process"):
            upgrade_path(path)
    upgrade_path(path)
    assert not (path / ".actstore.lock").exists()
    with Store(path, mode="r+").writing():
        with pytest.raises(ActstoreError, match="being written by another actstore process"):
            with Store(path, mode="r+").writing():
                pass
    assert not any(p.name.endswith(".lock") for p in path.rglob("*"))


def test_consolidated_metadata_is_current_after_a_sharded_launch(tiny_model_dir, data_dir, tmp_path):
    """Three ranks create, finish and consolidate concurrently; whoever writes the root last has checked it."""
    from test_sharded import ENV, extract_args, launch

    store = tmp_path / "s.zarr"
    done = subprocess.run(
        launch(3, extract_args(tiny_model_dir("bert"), data_dir, store)), env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert is_consolidated(Store(store).zstore)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tree = xr.open_datatree(store, engine="zarr")
        assert tree["extractions/sst2/train"].attrs["stamp"]["state"] == "complete"  # the last rank's write


def test_upgrade_on_object_storage(tmp_path):
    """The same upgrade through fsspec (``memory://``, as S3): no lock, copies and deletions by key."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    from actstore.store.backends import open_backend

    source, url = v2_store(tmp_path), "memory://idiomatic-upgrade/v2.zarr"
    target = open_backend(url).zarr_store(read_only=False)
    for file in source.rglob("*"):
        if file.is_file():
            sync(
                target.set(
                    file.relative_to(source).as_posix(), default_buffer_prototype().buffer.from_bytes(file.read_bytes())
                )
            )
    with pytest.raises(ActstoreError, match="run actstore upgrade"):
        open_store(url)
    assert len(upgrade_path(url)) == 10
    store = open_store(url)
    assert verify(store) == [] and is_consolidated(store.zstore)
    assert store.ranking("toy").layer_stack.values.tolist() == ["encoder"] * 2 + ["decoder"] * 3
    assert store.extraction("toy", stack="decoder").scores.sel(label_class=0).shape == (2, 8)
    assert not any(key.endswith(".actstore.lock") or "/decoder/" in key for key in sync(_keys(target)))


async def _keys(zstore) -> list[str]:
    return [key async for key in zstore.list()]


def test_repairing_two_damaged_groups_consolidates_once_both_are_mended(tmp_path):
    """Consolidating while another group is still damaged drops the copy instead of failing the repair."""
    path = v2_store(tmp_path)
    upgrade_path(path)
    for group in ("extractions/toy/validation", "extractions/toy/train"):
        meta_file = path / group / "scores" / "zarr.json"
        meta_file.write_text(meta_file.read_text()[:50])
    consolidate(Store(path, mode="r+").zstore)  # no error: a store with damage just has no copy, never a stale one
    assert "consolidated_metadata" not in json.loads((path / "zarr.json").read_text())
    result = invoke("verify", path, "--repair")
    assert result.exit_code == 0 and "2 problem(s)" in result.output, result.output
    assert verify(open_store(path)) == [] and is_consolidated(Store(path).zstore)
