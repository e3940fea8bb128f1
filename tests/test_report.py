"""`actstore report`: every figure the store has data for, as PNG and SVG, and an index page that lists them."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from actstore import analysis
from actstore.report import render, table_rows
from actstore.store import Store
from helpers import invoke, one_error_line
from test_analysis import accuracies, put_evaluation, put_prompts, put_ranking

TASKS = ("sst2", "imdb", "qnli")


def put_suppression(store: Store, task: str, neurons_from: str, drop: float, mode: str = "zero") -> None:
    """A curve in the layout actstore.suppression writes: skill accuracy falls by ``drop`` per percent."""
    percents = np.array([0.0, 1.0, 5.0, 10.0, 15.0])
    skill = np.stack([0.9 - drop * percents, 0.85 - drop * percents])                 # (seed, percent)
    control = 0.88 - 0.002 * percents + np.random.default_rng(0).normal(0, 0.01, (3, 2, 5))  # (draw, seed, percent)
    spec = {"kind": "suppression", "task": task, "neurons_from": neurons_from, "mode": mode, "scope": "layer"}
    name = f"{task}@{neurons_from}" + ("" if mode == "zero" else f".{mode}-layer")
    store.put_result("suppression", name, spec, xr.Dataset(
        {"accuracy_skill": (("seed", "percent"), skill), "accuracy_random": (("draw", "seed", "percent"), control)},
        coords={"seed": [0, 1], "percent": percents, "draw": [0, 1, 2]}))


@pytest.fixture
def full_store(tmp_path) -> Store:
    store = Store(tmp_path / "full.zarr", mode="a")
    for i, task in enumerate(TASKS):
        put_prompts(store, task)
        put_ranking(store, task, accuracies(i))
    put_ranking(store, "adv_sst2", accuracies(0) * 0.8 + 0.1, baseline="sst2")
    for a in TASKS:
        for j, b in enumerate(TASKS):
            put_evaluation(store, b, a, [0.9 - 0.1 * j, 0.8] if a == b else [0.6, 0.55])
    put_evaluation(store, "adv_sst2", "sst2", [0.4, 0.5])
    analysis.transfer(store, TASKS)
    analysis.correlate(store, [*TASKS, "adv_sst2"])
    analysis.correlate(store, [*TASKS, "adv_sst2"], "zscore")
    analysis.compare_adversarial(store, "adv_sst2", percents=[5.0, 10.0, 15.0, 25.0])
    for task, drop in (("sst2", 0.03), ("imdb", 0.02), ("qnli", 0.01), ("adv_sst2", 0.02)):
        put_suppression(store, task, task, drop)
    put_suppression(store, "adv_sst2", "sst2", 0.025)
    put_suppression(store, "sst2", "adv_sst2", 0.015)
    put_suppression(store, "sst2", "sst2", 0.01, mode="noise")
    return store


EXPECTED = ["transfer-relative-sst2_imdb_qnli", "transfer-absolute-sst2_imdb_qnli", "predictivity-distribution",
            "neuron-accuracy-distribution", "skill-neuron-layers", "correlation-sst2_imdb_qnli_adv_sst2", "correlation-sst2_imdb_qnli_adv_sst2.zscore",
            "suppression-zero-layer", "suppression-noise-layer", "cross-suppression-zero-layer", "adversarial-overlap"]


def test_report_draws_every_figure_and_lists_it(full_store, tmp_path):
    out = tmp_path / "report"
    report = render(Store(full_store.path), out)
    assert [stem for _, stem, _ in report.figures] == EXPECTED
    assert report.skipped == []
    for path in report.files():
        assert path.stat().st_size > 1000, path
    assert (out / "predictivity-distribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "adversarial-overlap.svg").read_text()
    index = (out / "index.md").read_text()
    for stem in EXPECTED:
        assert f"({stem}.png)" in index and f"({stem}.svg)" in index
        assert f"src='{stem}.png'" in (out / "index.html").read_text()
    # Table 1: one row per model, one column per task, mean ± std over seeds
    assert "| model | adv_sst2 | imdb | qnli | sst2 |" in index
    assert "| tiny | 0.450 ± 0.050 | 0.800 ± 0.000 | 0.750 ± 0.050 | 0.850 ± 0.050 |" in index


def test_a_store_without_results_skips_each_figure_with_a_note(tmp_path):
    out = tmp_path / "empty"
    report = render(Store(tmp_path / "e.zarr", mode="a"), out)
    assert report.figures == [] and len(report.skipped) == 6
    index = (out / "index.md").read_text()
    assert "No model accuracies" in index and "run actstore transfer" in index and "run actstore suppress" in index and "--neurons-from" in index
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "index.md"]


def test_table_rows_put_each_model_in_a_row():
    table = {"sst2": {"mean": 0.9, "std": 0.01, "model": "a"}, "qnli": {"mean": 0.7, "std": 0.02, "model": "b"}}
    assert table_rows(table) == (["sst2", "qnli"], {"a": ["0.900 ± 0.010", "–"], "b": ["–", "0.700 ± 0.020"]})


def test_report_command(full_store, tmp_path):
    result = invoke("report", "--store", full_store.path, "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert "11 figure(s), accuracy table of 4 task(s)" in result.output
    assert (tmp_path / "r" / "cross-suppression-zero-layer.svg").is_file()


def test_report_refuses_a_std_over_one_seed(tmp_path):
    store = Store(tmp_path / "one.zarr", mode="a")
    put_evaluation(store, "sst2", "sst2", [0.8], seeds=(0,))
    one_error_line(invoke("report", "--store", tmp_path / "one.zarr", "--out", tmp_path / "r"),
                   "'sst2' is reported as mean ± std over seeds, but it has 1 seed")
    one_error_line(invoke("report", "--store", tmp_path / "none.zarr", "--out", tmp_path / "r"), "no actstore store")
