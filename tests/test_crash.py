"""kill -9 in the middle of `actstore extract`, then the same command again: nothing lost, nothing different."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

from actstore import open_store


def command(model_dir, data_dir, store):
    return [sys.executable, "-m", "actstore.cli.app", "extract", "--model", str(model_dir), "--task", "sst2",
            "--split", "validation", "--prompts", "random", "--seeds", "0,1,2", "--prompt-length", "4",
            "--batch-size", "2", "--block", "4", "--limit", "300", "--data-dir", str(data_dir), "--store", str(store)]


def done_blocks(store):
    folder = store / "extractions" / "sst2" / "validation" / "done" / "c"
    return sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".partial")) if folder.exists() else 0


def test_kill_9_then_rerun_gives_the_uninterrupted_result(tiny_model_dir, data_dir, tmp_path):
    model = tiny_model_dir("bert")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(command(model, data_dir, tmp_path / "ref.zarr"), check=True, env=env, capture_output=True)

    store = tmp_path / "cut.zarr"
    proc = subprocess.Popen(command(model, data_dir, store), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
