"""Extraction sharded by a real launcher (torchrun, one process per rank, on CPU): 1, 2 and 3 ranks write the
store one process writes, bit for bit and chunk for chunk; a rank killed mid-run costs only its unfinished units."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from actstore.launch import Shard
from helpers import experiment_toml, invoke, one_error_line, stored_arrays

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def extract_args(model: Path, data_dir: Path, store: Path) -> list[str]:
    """Train (stored, 10 blocks in segments of 2) and validation (values and bits: every rank waits for the baseline)
    of 2 seeds: units of both kinds to share."""
    return [
        str(a)
        for a in (
            "extract",
            "--model",
            model,
            "--task",
            "sst2",
            "--prompts",
            "random",
            "--seeds",
            "0,1",
            "--prompt-length",
            "3",
            "--limit",
            "40",
            "--batch-size",
            "2",
            "--block",
            "4",
            "--segment",
            "2",
            "--store-train",
            "--keep",
            "both",
            "--data-dir",
            data_dir,
            "--store",
            store,
        )
    ]


def launch(ranks: int, args: list[str]) -> list[str]:
    """The command line a user types: the console script alone, or under torchrun."""
    if ranks == 1:
        return [str(BIN / "actstore"), *args]
    return [
        str(BIN / "torchrun"),
        "--standalone",
        "--nproc-per-node",
        str(ranks),
        "--no-python",
        str(BIN / "actstore"),
        *args,
    ]


def contents(store: Path) -> tuple[dict[str, np.ndarray], set[str]]:
    """Every array's values, and every chunk file that exists (markers included)."""
    chunks = {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file() and "/c/" in str(p.relative_to(store))}
    return stored_arrays(store), chunks


def assert_same_store(got: Path, expected: Path) -> None:
    (values, chunks), (ref_values, ref_chunks) = contents(got), contents(expected)
    assert chunks == ref_chunks
    assert values.keys() == ref_values.keys()
    for key, ref in ref_values.items():
        np.testing.assert_array_equal(values[key], ref, err_msg=key)


@pytest.fixture(scope="module")
def reference(tiny_model_dir, data_dir, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("one") / "one.zarr"
    subprocess.run(
        launch(1, extract_args(tiny_model_dir("bert"), data_dir, store)), check=True, env=ENV, capture_output=True
    )
    return store


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_ranks_write_what_one_process_writes(reference, tiny_model_dir, data_dir, tmp_path, ranks):
    store = tmp_path / f"{ranks}.zarr"
    done = subprocess.run(
        launch(ranks, extract_args(tiny_model_dir("bert"), data_dir, store)), env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    if ranks > 1:
        assert f"(rank {ranks - 1} of {ranks})" in done.stdout
    assert_same_store(store, reference)
    assert invoke("verify", store).exit_code == 0


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_rank_killed_mid_run_then_the_same_launch_again(reference, tiny_model_dir, data_dir, tmp_path):
    store = tmp_path / "killed.zarr"
    command = launch(2, extract_args(tiny_model_dir("bert"), data_dir, store))
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    markers = store / "extractions" / "sst2" / "train" / "done" / "c"
    deadline = time.time() + 120
    while (not markers.exists() or sum(1 for p in markers.rglob("*") if p.is_file()) < 3) and time.time() < deadline:
        time.sleep(0.01)
    ranks = _children(proc.pid)
    assert len(ranks) == 2 and proc.poll() is None, "the launch finished before a rank could be killed"
    os.kill(ranks[1], signal.SIGKILL)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    train_markers = store / "extractions" / "sst2" / "train" / "segment_done" / "c"
    assert not train_markers.exists() or sum(1 for p in train_markers.rglob("*") if p.is_file()) < 10

    again = subprocess.run(command, env=ENV, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_store(store, reference)


@pytest.mark.parametrize(
    "env, shard",
    [
        ({}, Shard(0, 1, 0)),
        ({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}, Shard(2, 4, 0)),
        ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}, Shard(5, 8, 1)),
    ],
)
def test_the_rank_comes_from_the_launcher(env, shard):
    assert Shard.from_env(env) == shard


@pytest.mark.parametrize(
    "env, message",
    [
        ({"WORLD_SIZE": "2"}, "RANK and WORLD_SIZE must both be set"),
        ({"RANK": "1"}, "RANK and WORLD_SIZE must both be set"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "rank 2 of world size 2"),
        ({"SLURM_PROCID": "x", "SLURM_NTASKS": "2"}, "must be integers"),
    ],
)
def test_a_broken_launch_environment_is_one_error_line(env, message, tiny_model_dir, data_dir, tmp_path, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = tmp_path / "never.zarr"
    one_error_line(invoke(*extract_args(tiny_model_dir("bert"), data_dir, store)), message)
    assert not store.exists()


def experiment(tmp_path: Path, name: str, model: Path, data_dir: Path) -> Path:
    """sst2 and its adversarial set, 3 seeds (an uneven share for 2 ranks): tune → extract → rank."""
    path = tmp_path / f"{name}.toml"
    path.write_text(
        experiment_toml(
            tmp_path / f"{name}.zarr",
            model,
            data_dir,
            tasks=("sst2", "adv_sst2"),
            seeds=(0, 1, 2),
            extract="segment = 1\n",
        )
    )
    return path


def test_run_under_torchrun_tunes_extracts_and_ranks_as_one_process(tiny_model_dir, data_dir, tmp_path):
    model = tiny_model_dir("roberta")
    for name, ranks in (("one", 1), ("two", 2)):
        done = subprocess.run(
            launch(ranks, ["run", str(experiment(tmp_path, name, model, data_dir))]),
            env=ENV,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 1 of 2 did its share" in done.stdout and "top skill neurons of sst2" in done.stdout
    (values, chunks), (ref_values, ref_chunks) = contents(tmp_path / "two.zarr"), contents(tmp_path / "one.zarr")
    assert chunks == ref_chunks
    assert values.keys() == ref_values.keys() and any(k.startswith("rankings/adv_sst2") for k in values)
    for key, ref in ref_values.items():
        if not key.endswith("wall_s"):  # how long a seed took is the one thing that differs
            np.testing.assert_array_equal(values[key], ref, err_msg=key)


@pytest.mark.parametrize(
    "model, ranks, args",
    [
        # 2 dev blocks of one seed for 3 ranks: rank 2 has nothing to do, and just finishes
        ("tiny", 3, ["--split", "validation", "--seeds", "0", "--limit", "8"]),
        # the real MiniLM weights (6 layers × 1536 neurons), train and dev
        ("all-minilm-l6-v2", 2, ["--seeds", "0,1", "--limit", "24", "--segment", "1", "--keep", "bits"]),
    ],
)
def test_uneven_shares_and_a_real_model(tiny_model_dir, data_dir, tmp_path, model, ranks, args):
    model = tiny_model_dir("bert") if model == "tiny" else model
    common = [
        "extract",
        "--model",
        str(model),
        "--task",
        "sst2",
        "--prompts",
        "random",
        "--prompt-length",
        "3",
        "--batch-size",
        "4",
        "--block",
        "4",
        "--data-dir",
        str(data_dir),
        *args,
    ]
    for name, n in (("one", 1), ("many", ranks)):
        done = subprocess.run(
            launch(n, [*common, "--store", str(tmp_path / f"{name}.zarr")]), env=ENV, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert_same_store(tmp_path / "many.zarr", tmp_path / "one.zarr")


def test_ranks_creating_one_new_store_at_the_same_moment_all_open_it(tmp_path):
    """torchrun starts every rank at once: each opens the store for writing, and only one can create it."""
    code = (
        "import sys, time\nfrom actstore.store import Store\nstart = float(sys.argv[2])\n"
        "while time.time() < start:\n    pass\nprint(Store(sys.argv[1], mode='a').root.attrs['actstore']"
        "['schema_version'])"
    )
    for attempt in range(3):
        store, start = tmp_path / f"s{attempt}.zarr", time.time() + 4
        ranks = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(store), str(start)],
                env=ENV,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(4)
        ]
        outcomes = [rank.communicate(timeout=120) for rank in ranks]
        assert all(rank.returncode == 0 for rank in ranks), [err[-2000:] for _, err in outcomes]
        assert {out.strip() for out, _ in outcomes} == {"3"}
