"""kill -9 in the middle of `actstore extract`, then the same command again: nothing lost, nothing different;
and a chunk corrupted on disk is found by `actstore verify` and computed again after `--repair`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from actstore import open_store
from actstore.errors import ActstoreError
from actstore.extraction import ExtractOptions, extract
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.store import Store
from helpers import SENTIMENT, invoke, run_toy, toy_split


def command(model_dir, data_dir, store):
    return [
        sys.executable,
        "-m",
        "actstore.cli.app",
        "extract",
        "--model",
        str(model_dir),
        "--task",
        "sst2",
        "--split",
        "validation",
        "--prompts",
        "random",
        "--seeds",
        "0,1,2",
        "--prompt-length",
        "4",
        "--batch-size",
        "2",
        "--block",
        "4",
        "--limit",
        "300",
        "--data-dir",
        str(data_dir),
        "--store",
        str(store),
    ]


def done_blocks(store):
    folder = store / "extractions" / "sst2" / "validation" / "done" / "c"
    if not folder.exists():
        return 0
    return sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".partial"))


def test_kill_9_then_rerun_gives_the_uninterrupted_result(tiny_model_dir, data_dir, tmp_path):
    model = tiny_model_dir("bert")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(command(model, data_dir, tmp_path / "ref.zarr"), check=True, env=env, capture_output=True)

    store = tmp_path / "cut.zarr"
    proc = subprocess.Popen(
        command(model, data_dir, store), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while done_blocks(store) < 20 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = done_blocks(store)
    assert proc.returncode == -signal.SIGKILL, "the extraction finished before it could be killed"
    assert 0 < killed_at < 3 * 75

    partial = open_store(store).extraction("sst2", "validation", complete_only=False)
    complete = partial["complete"].values
    assert 0 < complete.sum() < complete.size
    reference = open_store(tmp_path / "ref.zarr").extraction("sst2", "validation")
    got = partial["acts"].values[complete]  # every block marked done is whole and right
    np.testing.assert_array_equal(got, reference["acts"].values[complete])

    rerun = subprocess.run(command(model, data_dir, store), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    resumed = open_store(store).extraction("sst2", "validation")
    for name in ("acts", "scores", "prediction", "label"):
        np.testing.assert_array_equal(resumed[name].values, reference[name].values)
    assert not list(store.rglob("*.partial"))


def test_verify_finds_corrupted_chunks_and_repair_lets_extract_redo_their_blocks(tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir("bert"), data_dir)  # train activations stored too
    reference = {split: store.extraction("toy", split)["acts"].values for split in ("train", "validation")}
    baseline = store.baseline("toy").values
    assert invoke("verify", tmp_path / "s.zarr").exit_code == 0
    for split, chunk in (("validation", "1/1/0/0/0"), ("train", "0/2/1/0/0")):
        path = tmp_path / "s.zarr" / "extractions" / "toy" / split / "acts" / "c" / chunk
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    found = invoke("verify", tmp_path / "s.zarr")
    assert found.exit_code == 1 and "2 problem(s)" in found.output
    assert "damaged: extractions/toy/validation acts seed 1 block 1 layer 0" in found.output
    assert "damaged: extractions/toy/train acts seed 0 block 2 layer 1" in found.output
    repaired = invoke("verify", tmp_path / "s.zarr", "--repair", "--json")
    assert repaired.exit_code == 0 and len(json.loads(repaired.output)["damage"]) == 2
    with pytest.raises(ActstoreError, match=r"incomplete \(5/6 blocks done\)"):
        Store(tmp_path / "s.zarr").extraction("toy", "validation")
    model = load_model(str(tiny_model_dir("bert")))
    for split, n in (("train", 12), ("validation", 10)):
        extract(
            Store(tmp_path / "s.zarr", mode="a"),
            model,
            SENTIMENT,
            toy_split(data_dir, split, n),
            PromptSet.stored(store, "toy"),
            ExtractOptions(batch_size=2, block=4, store_train=True, segment=2),
        )
    again = Store(tmp_path / "s.zarr")
    for split in ("train", "validation"):
        np.testing.assert_array_equal(again.extraction("toy", split)["acts"].values, reference[split])
    np.testing.assert_array_equal(again.baseline("toy").values, baseline)  # summed once, not twice
    assert invoke("verify", tmp_path / "s.zarr").exit_code == 0
