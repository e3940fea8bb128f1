"""Planted faults, for every kind of array and for the metadata: each is found by `actstore verify`, refused by
every reader with one `error:` line (never read back as data), and healed bit-identically by
`verify --repair` + the same `extract` and `rank` commands where it can be recomputed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from actstore import open_store
from actstore.errors import StoreFault
from actstore.stats import activation_stats
from helpers import digest, invoke, one_error_line, stored_arrays

VALIDATION, TRAIN = "extractions/sst2/validation", "extractions/sst2/train"


def extract_args(model: Path, data_dir: Path, store: Path, *, new_prompts: bool = True) -> list:
    """The extract command; without ``new_prompts`` it uses the prompts the store holds."""
    prompts = ["--prompts", "random", "--seeds", "0,1", "--prompt-length", "3"] if new_prompts else []
    return [
        "extract",
        "--model",
        model,
        "--task",
        "sst2",
        *prompts,
        "--limit",
        "16",
        "--batch-size",
        "4",
        "--block",
        "8",
        "--store-train",
        "--keep",
        "both",
        "--data-dir",
        data_dir,
        "--store",
        store,
    ]


@pytest.fixture(scope="module")
def reference(tiny_model_dir, data_dir, tmp_path_factory) -> tuple[Path, list]:
    """A finished store (train activations stored, validation values and bits, a ranking) and the command that made
    it."""
    store = tmp_path_factory.mktemp("faults") / "ref.zarr"
    args = extract_args(tiny_model_dir("bert"), data_dir, store)
    assert invoke(*args).exit_code == 0
    assert invoke("rank", "--store", store, "--task", "sst2").exit_code == 0
    return store, args


CHUNKS = {  # array kind → one chunk of a finished block / seed
    "acts": f"{VALIDATION}/acts/c/1/1/0/0/0",
    "bits": f"{VALIDATION}/bits/c/1/0/1/0/0",
    "moments": f"{VALIDATION}/moments/c/0/1/0/0/0",
    "train acts": f"{TRAIN}/acts/c/0/1/1/0/0",
    "scores": f"{VALIDATION}/scores/c/0/1/0",
    "prediction": f"{VALIDATION}/prediction/c/1/0",
    "label": f"{VALIDATION}/label/c/0",
    "done": f"{VALIDATION}/done/c/0/1",
    "coordinate": f"{VALIDATION}/example/c/0",
    "baseline": f"{TRAIN}/baseline/c/1/0/0/0",
    "segment sum": f"{TRAIN}/baseline_parts/c/1/0/1/0/0",
    "segment marker": f"{TRAIN}/segment_done/c/0/0",
    "ranking": "rankings/sst2/predictivity/c/0/0",
}


def plant(path: Path, fault: str) -> None:
    data = path.read_bytes()
    if fault == "flip":
        path.write_bytes(data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0x10]) + data[len(data) // 2 + 1 :])
    elif fault == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.unlink()


def heal(store: Path, args: list, expected: dict[str, np.ndarray]) -> None:
    """repair, then the same extract and rank: bit-identical to the store before the fault, and verify is clean."""
    repaired = invoke("verify", store, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert invoke(*args[:-1], store).exit_code == 0
    assert invoke("rank", "--store", store, "--task", "sst2").exit_code == 0
    clean = invoke("verify", store)
    assert clean.exit_code == 0 and "0 problem(s)" in clean.output, clean.output
    got = stored_arrays(store)
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        np.testing.assert_array_equal(got[key], values, err_msg=key)


@pytest.mark.parametrize("fault", ["flip", "truncate", "delete"])
@pytest.mark.parametrize("kind", list(CHUNKS))
def test_a_damaged_chunk_is_found_refused_and_healed(reference, tmp_path, kind, fault):
    source, args = reference
    expected = stored_arrays(source)
    store = tmp_path / "s.zarr"
    shutil.copytree(source, store)
    key = CHUNKS[kind]
    plant(store / key, fault)

    found = invoke("verify", store, "--json")
    assert found.exit_code == 1, found.output
    damage = json.loads(found.output)["damage"]
    assert damage and all(d["recomputable"] for d in damage)
    assert_refused(store, kind, "extract" if kind == "done" and fault == "delete" else "verify")
    heal(store, args, expected)


def assert_refused(store: Path, kind: str, hint: str = "verify") -> None:
    """Every reader of an array of ``kind`` refuses the store: a StoreFault, or one error line naming ``hint``."""
    if kind in ("train acts", "acts"):  # rank reads the train baseline and the bits: the analyst's view refuses
        with pytest.raises(StoreFault):
            open_store(store).activations("sst2", kind.removesuffix("acts").strip() or "validation").values
    elif kind == "moments":  # read by noise suppression
        with pytest.raises(StoreFault):
            activation_stats(open_store(store), "sst2", "validation")
    elif kind == "baseline":  # read by extraction (the bits) and mean suppression; rank counts the stored bits
        with pytest.raises(StoreFault):
            open_store(store).baseline("sst2")
    elif kind == "ranking":
        one_error_line(invoke("info", store), "verify")
    elif kind.startswith("train ") or kind == "text":  # read by nothing in rank: the analyst's view refuses it
        with pytest.raises(StoreFault):
            open_store(store).extraction("sst2", "train" if kind.startswith("train ") else "validation").load()
    elif not kind.startswith("segment"):  # a finished train split's segment sums are read by nothing but verify
        one_error_line(invoke("rank", "--store", store, "--task", "sst2"), hint)


@pytest.mark.parametrize(
    "fault",
    [
        "broken array zarr.json",
        "dtype edited",
        "broken group zarr.json",
        "spec edited",
        "broken root zarr.json",
        "ranking dtype edited",
    ],
)
def test_damaged_metadata_is_found_refused_and_healed(reference, tmp_path, fault):
    source, args = reference
    expected = stored_arrays(source)
    store = tmp_path / "s.zarr"
    shutil.copytree(source, store)
    meta = {
        "broken array zarr.json": f"{VALIDATION}/acts",
        "dtype edited": f"{VALIDATION}/acts",
        "broken group zarr.json": VALIDATION,
        "spec edited": VALIDATION,
        "broken root zarr.json": "",
        "ranking dtype edited": "rankings/sst2/predictivity",
    }[fault]
    path = store / meta / "zarr.json"
    text = path.read_text()
    if fault.startswith("broken"):
        path.write_text(text[: len(text) // 2])
    elif fault == "spec edited":
        path.write_text(text.replace('"max_length": 128', '"max_length": 127'))
    else:
        path.write_text(text.replace('"float16"', '"int16"').replace('"float64"', '"int64"'))
    assert path.read_text() != text

    assert invoke("verify", store).exit_code == 1
    one_error_line(
        invoke("rank", "--store", store, "--task", "sst2") if "ranking" not in fault else invoke("info", store),
        "verify",
    )
    heal(store, args, expected)


@pytest.mark.parametrize(
    "group, array", [(VALIDATION, "acts"), ("rankings/sst2", "predictivity"), ("prompts/sst2", "prompt")]
)
def test_a_group_whose_zarr_json_is_an_arrays_is_found_refused_and_healed(
    reference, tiny_model_dir, data_dir, tmp_path, group, array
):
    """A group's zarr.json replaced by one of its arrays' opens as that array: every reader refuses it, so verify
    reports it as damaged (never skips it as a group still being created) and repair removes it for the command
    that made it, or says that prompts cannot be recomputed."""
    source, args = reference
    expected = stored_arrays(source)
    store = tmp_path / "s.zarr"
    shutil.copytree(source, store)
    shutil.copyfile(store / group / array / "zarr.json", store / group / "zarr.json")
    prompts = group.startswith("prompts")

    found = invoke("verify", store, "--json")
    assert found.exit_code == 1, found.output
    damage = [(d["group"], d["item"], d["problem"], d["recomputable"]) for d in json.loads(found.output)["damage"]]
    assert (group, "zarr.json", "damaged", not prompts) in damage, damage
    if group.startswith("rankings"):
        with pytest.raises(StoreFault, match="an array where a group belongs: run actstore verify"):
            open_store(store).ranking("sst2")
    else:  # an extract with the stored prompts reads them; rank reads the extraction
        one_error_line(
            invoke(*extract_args(tiny_model_dir("bert"), data_dir, store, new_prompts=False))
            if prompts
            else invoke("rank", "--store", store, "--task", "sst2"),
            "verify",
        )
    if prompts:
        repaired = invoke("verify", store, "--repair")
        assert repaired.exit_code == 1 and "1 not recomputable" in repaired.output, repaired.output
    else:
        heal(store, args, expected)


def test_a_zarr_json_still_being_written_is_not_taken_for_a_lost_one(reference, tmp_path):
    """A rank waiting for the group rank 0 is creating sees zarr's temporary file of its zarr.json: not there yet,
    not damage; a folder holding data without its zarr.json stays a fault."""
    store = tmp_path / "s.zarr"
    shutil.copytree(reference[0], store)
    group = store / "extractions" / "sst2" / "test"
    group.mkdir()
    (group / "zarr.0123456789abcdef.partial").write_text('{"zarr_fo')  # LocalStore's atomic write in flight
    assert open_store(store).extraction_spec("sst2", "test") is None
    (group / "label").mkdir()
    (group / "label" / "zarr.json").write_text("{}")
    with pytest.raises(StoreFault, match=r"holds data but its zarr\.json is missing"):
        open_store(store).extraction_spec("sst2", "test")


def test_lost_prompts_are_reported_as_not_recomputable(reference, tiny_model_dir, data_dir, tmp_path):
    source, _ = reference
    store = tmp_path / "s.zarr"
    shutil.copytree(source, store)
    plant(store / "prompts/sst2/prompt/c/0/0/0", "flip")
    repaired = invoke("verify", store, "--repair")
    assert repaired.exit_code == 1 and "1 not recomputable" in repaired.output
    assert "prompts import" in repaired.output
    before = digest(store)
    extract_with_stored_prompts = extract_args(tiny_model_dir("bert"), data_dir, store, new_prompts=False)
    one_error_line(invoke(*extract_with_stored_prompts), "verify")
    assert digest(store) == before


def test_a_chunk_of_all_fill_values_is_still_written(tmp_path):
    """zarr skips chunks equal to the fill value by default; then a missing chunk could be data. Not in the arrays
    actstore writes (``integrity.writable``), while an array it does not write keeps zarr's default."""
    from actstore.store import Store
    from actstore.store.integrity import writable

    store = Store(tmp_path / "s.zarr", mode="a")
    group = store.root.require_group("g")
    writable(group.create_array("zeros", shape=(4,), chunks=(2,), dtype="float16", fill_value=0))[...] = 0
    group.create_array("plain", shape=(4,), chunks=(2,), dtype="float16", fill_value=0)[...] = 0
    assert sorted(p.name for p in (tmp_path / "s.zarr/g/zeros/c").iterdir()) == ["0", "1"]
    assert not (tmp_path / "s.zarr/g/plain/c").exists()


#: array kind → two valid chunks of the same size and other bytes, which a misdirected write could exchange (the
#: tiny model predicts one class everywhere, so no two prediction chunks differ: scores stand for the block's own)
PAIRS = {
    "acts": (f"{VALIDATION}/acts/c/0/0/0/0/0", f"{VALIDATION}/acts/c/1/1/0/0/0"),
    "bits": (f"{VALIDATION}/bits/c/0/0/0/0/0", f"{VALIDATION}/bits/c/1/1/1/0/0"),
    "moments": (f"{VALIDATION}/moments/c/0/0/0/0/0", f"{VALIDATION}/moments/c/1/1/0/0/0"),
    "train acts": (f"{TRAIN}/acts/c/0/0/0/0/0", f"{TRAIN}/acts/c/0/1/1/0/0"),
    "scores": (f"{VALIDATION}/scores/c/0/0/0", f"{VALIDATION}/scores/c/1/1/0"),
    "length": (f"{VALIDATION}/length/c/0", f"{VALIDATION}/length/c/1"),
    "label": (f"{VALIDATION}/label/c/0", f"{TRAIN}/label/c/0"),
    "text": (f"{VALIDATION}/text/c/0/0", f"{TRAIN}/text/c/0/0"),
    "train example": (f"{TRAIN}/example/c/0", f"{VALIDATION}/example/c/0"),
    "baseline": (f"{TRAIN}/baseline/c/0/0/0/0", f"{TRAIN}/baseline/c/1/0/0/0"),
    "segment sum": (f"{TRAIN}/baseline_parts/c/0/0/0/0/0", f"{TRAIN}/baseline_parts/c/1/0/1/0/0"),
    "manifest": (f"{VALIDATION}/block_crc/c/0/0/0", f"{VALIDATION}/block_crc/c/1/1/0"),
}
#: array kind → a chunk whose version from an earlier extraction at the same key (other prompts) differs
STALE = {
    "acts": PAIRS["acts"][0],
    "bits": PAIRS["bits"][1],
    "moments": PAIRS["moments"][0],
    "train acts": PAIRS["train acts"][1],
    "scores": PAIRS["scores"][1],
    "baseline": PAIRS["baseline"][1],
    "segment sum": PAIRS["segment sum"][0],
    "coordinate": f"{VALIDATION}/seed/c/0",
    "ranking": "rankings/sst2/predictivity/c/0/0",
}


@pytest.fixture(scope="module")
def earlier(tiny_model_dir, data_dir, tmp_path_factory) -> Path:
    """A store made by the same commands with other prompt seeds: an earlier version of every chunk."""
    store = tmp_path_factory.mktemp("faults") / "earlier.zarr"
    args = extract_args(tiny_model_dir("bert"), data_dir, store)
    assert invoke(*[("2,3" if a == "0,1" else a) for a in args]).exit_code == 0
    assert invoke("rank", "--store", store, "--task", "sst2").exit_code == 0
    return store


def misplace(store: Path, kind: str, fault: str, earlier: Path) -> None:
    """Plant a chunk that passes its CRC32C at another chunk's key: the two exchanged, one copied over the other,
    or an older version of it (a lost write)."""
    if fault == "rewritten":
        target, source = store / REWRITTEN[kind], rewritten_chunk(store, REWRITTEN[kind], earlier.parent)
    elif fault == "stale":
        target, source = store / STALE[kind], earlier / STALE[kind]
    else:
        target, source = (store / key for key in PAIRS[kind])
    old, new = target.read_bytes(), source.read_bytes()
    assert old != new  # a real fault: other bytes than were written there
    if fault == "exchange":
        source.write_bytes(old)
    target.write_bytes(new)


#: array kind → a chunk no other version of which the tiny model makes: the test writes one (other values)
REWRITTEN = {"prediction": f"{VALIDATION}/prediction/c/1/1"}


def rewritten_chunk(store: Path, key: str, scratch: Path) -> Path:
    """A valid chunk of the array at ``key`` holding other values, as a second write there would leave it: written
    by plain zarr into a copy of the array."""
    import zarr

    array_path, _, coords = key.partition("/c/")
    copy = scratch / "rewritten.zarr"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(store / array_path, copy)
    array = zarr.open_array(copy, mode="r+")
    where = tuple(slice(int(c) * n, (int(c) + 1) * n) for c, n in zip(coords.split("/"), array.chunks))
    array[where] = np.asarray(array[where]) + 1
    return copy / "c" / coords


@pytest.mark.parametrize(
    "kind,fault",
    [(k, f) for f in ("exchange", "duplicate") for k in PAIRS]
    + [(k, "stale") for k in STALE]
    + [(k, "rewritten") for k in REWRITTEN],
)
def test_a_chunk_at_another_address_is_found_refused_and_healed(reference, earlier, tmp_path, kind, fault):
    """Each chunk's CRC32C is recorded apart from it (its block's manifest, its group's seal), so valid bytes in
    the wrong place are a fault like damaged ones: found, refused, recomputed bit-identically."""
    source, args = reference
    expected = stored_arrays(source)
    store = tmp_path / "s.zarr"
    shutil.copytree(source, store)
    misplace(store, kind, fault, earlier)

    found = invoke("verify", store, "--json")
    assert found.exit_code == 1, found.output
    damage = json.loads(found.output)["damage"]
    problems = {d["problem"] for d in damage}
    assert problems == {"misplaced"}, damage  # an exchanged manifest: its blocks hold chunks it does not record
    assert all(d["recomputable"] for d in damage)
    assert_refused(store, {"manifest": "acts", "length": "scores"}.get(kind, kind))
    heal(store, args, expected)


def test_stale_prompts_are_found_and_refused(reference, earlier, tiny_model_dir, data_dir, tmp_path):
    """Prompts cannot be recomputed: an older prompt chunk is reported so, and every extract refuses it."""
    store = tmp_path / "s.zarr"
    shutil.copytree(reference[0], store)
    key = "prompts/sst2/prompt/c/0/0/0"
    (store / key).write_bytes((earlier / key).read_bytes())
    found = invoke("verify", store, "--json")
    damage = json.loads(found.output)["damage"]
    assert found.exit_code == 1 and [(d["problem"], d["recomputable"]) for d in damage] == [("misplaced", False)]
    before = digest(store)
    one_error_line(invoke(*extract_args(tiny_model_dir("bert"), data_dir, store, new_prompts=False)), "verify")
    assert digest(store) == before


def test_verify_reports_an_unfinished_extraction_in_progress(reference, tmp_path):
    """A train split whose segments are stored but whose baselines are not written yet (the moment before an
    extraction ends): in progress, never a problem."""
    from actstore.store import Store
    from actstore.store.attrs import put_attrs

    store = tmp_path / "s.zarr"
    shutil.copytree(reference[0], store)
    for name in ("baseline", "baseline_crc"):
        shutil.rmtree(store / TRAIN / name / "c")
    group = Store(store, mode="a").root[TRAIN]
    attrs = dict(group.attrs)
    put_attrs(group, {**attrs, "stamp": {**attrs["stamp"], "state": "in_progress"}})
    found = json.loads(invoke("verify", store, "--json").output)
    assert found["damage"] == []
    assert [p["group"] for p in found["in_progress"]] == [TRAIN]


def test_verify_reads_a_block_finished_after_its_listing_as_sound(reference, tmp_path, monkeypatch):
    """verify lists the store, then reads the done markers: a block that a running extraction finished in between
    (its chunks absent from the listing, its marker present) is read and found sound, never reported missing."""
    from actstore.store import verify

    store = tmp_path / "s.zarr"
    shutil.copytree(reference[0], store)
    listed = verify._list

    async def before_the_last_block(zstore):
        return [k for k in await listed(zstore) if not re.match(rf"{VALIDATION}/(acts|bits|scores)/c/1/1/", k)]

    monkeypatch.setattr(verify, "_list", before_the_last_block)
    found = invoke("verify", store, "--json")
    assert found.exit_code == 0 and json.loads(found.output)["damage"] == [], found.output
    (store / CHUNKS["acts"]).unlink()  # and a chunk truly gone is still missing
    damage = json.loads(invoke("verify", store, "--json").output)["damage"]
    assert [(d["item"], d["problem"]) for d in damage] == [("acts seed 1 block 1 layer 0", "missing")]


def test_a_group_gone_but_still_in_the_consolidated_metadata_is_found(reference, tmp_path):
    """Plain xarray opens a store through the root's consolidated copy of every zarr.json: a group deleted behind
    actstore's back would still be listed there, and read as empty chunks by whoever trusts it."""
    store = tmp_path / "s.zarr"
    shutil.copytree(reference[0], store)
    shutil.rmtree(store / "rankings" / "sst2")
    found = invoke("verify", store, "--json")
    assert found.exit_code == 1
    assert [(d["group"], d["problem"]) for d in json.loads(found.output)["damage"]] == [("rankings/sst2", "missing")]
    assert invoke("verify", store, "--repair").exit_code == 0
    assert "rankings/sst2" not in (store / "zarr.json").read_text()
    assert "0 problem(s)" in invoke("verify", store).output


def test_a_reader_open_while_a_result_is_rewritten_reads_the_new_one(tmp_path):
    """The seal a reader checks a group's chunks against is read again whenever it opens the group: a result that
    another writer replaced meanwhile is read as the new one, never taken for a misplaced chunk."""
    import xarray as xr

    from actstore.store import Store

    path = tmp_path / "s.zarr"

    def put(values: list[float]) -> None:
        writer = Store(path, mode="a")
        with writer.writing():
            writer.put_result(
                "evaluation", "x", {"kind": "evaluation", "n": len(values)}, xr.Dataset({"accuracy": ("seed", values)})
            )

    put([0.5, 0.6])
    reader = Store(path)
    assert reader.result("evaluation", "x")["accuracy"].values.tolist() == [0.5, 0.6]
    put([0.7, 0.8])
    assert reader.result("evaluation", "x")["accuracy"].values.tolist() == [0.7, 0.8]
