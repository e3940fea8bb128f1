"""`actstore report`: every figure the store has data for, as PNG and SVG, and an index page that lists them."""

from __future__ import annotations

import html

import numpy as np
import pytest
import xarray as xr

from actstore import analysis
from actstore.report import adversarial_figure, figures, render, table_rows, task_order
from actstore.store import Store
from helpers import invoke, one_error_line
from test_analysis import accuracies, put_evaluation, put_prompts, put_ranking

TASKS = ("sst2", "imdb", "qnli")


def put_suppression(store: Store, task: str, neurons_from: str, drop: float, mode: str = "zero") -> None:
    """A curve in the layout actstore.suppression writes: skill accuracy falls by ``drop`` per percent."""
    percents = np.array([0.0, 1.0, 5.0, 10.0, 15.0])
    skill = np.stack([0.9 - drop * percents, 0.85 - drop * percents])  # (seed, percent)
    control = 0.88 - 0.002 * percents + np.random.default_rng(0).normal(0, 0.01, (3, 2, 5))  # (draw, seed, percent)
    spec = {
        "kind": "suppression",
        "task": task,
        "neurons_from": neurons_from,
        "mode": mode,
        "scope": "layer",
        "n_examples": 300,
    }
    name = f"{task}@{neurons_from}" + ("" if mode == "zero" else f".{mode}-layer")
    store.put_result(
        "suppression",
        name,
        spec,
        xr.Dataset(
            {"accuracy_skill": (("seed", "percent"), skill), "accuracy_random": (("draw", "seed", "percent"), control)},
            coords={"seed": [0, 1], "percent": percents, "draw": [0, 1, 2]},
        ),
    )


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


EXPECTED = [
    "transfer-relative-sst2_imdb_qnli",
    "transfer-absolute-sst2_imdb_qnli",
    "predictivity-distribution",
    "neuron-accuracy-distribution",
    "skill-neuron-layers",
    "correlation-sst2_imdb_qnli_adv_sst2",
    "correlation-sst2_imdb_qnli_adv_sst2.zscore",
    "suppression-zero-layer",
    "suppression-noise-layer",
    "cross-suppression-zero-layer",
    "adversarial-overlap",
]


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
    assert "| model | sst2 | imdb | qnli | adv_sst2 |" in index  # clean tasks first, then the adversarial ones
    assert "| tiny | 0.850 ± 0.050 | 0.800 ± 0.000 | 0.750 ± 0.050 | 0.450 ± 0.050 |" in index


def test_a_store_without_results_skips_each_figure_with_a_note(tmp_path):
    out = tmp_path / "empty"
    report = render(Store(tmp_path / "e.zarr", mode="a"), out)
    assert report.figures == [] and len(report.skipped) == 5  # the rankings and each kind KINDS gives a section
    index = (out / "index.md").read_text()
    assert "No model accuracies" in index and "run actstore transfer" in index
    assert "run actstore suppress" in index and "--neurons-from" in index
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "index.md"]


def test_the_report_learns_the_kinds_of_result_from_the_registry(monkeypatch, tmp_path):
    """A kind registered in ``results.KINDS`` is listed in the index with what it holds, and one with a section but
    no result in the store gets that section's note, without a line of report code naming it."""
    from actstore.results import KINDS, ResultKind

    monkeypatch.setitem(KINDS, "probe", ResultKind("probe", "probing accuracy per layer", "actstore probe"))
    monkeypatch.setitem(
        KINDS, "probe-map", ResultKind("probe-map", "probing maps", "actstore probe --map", "probing maps", (9,))
    )
    store = Store(tmp_path / "p.zarr", mode="a")
    store.put_result("probe", "sst2", {"kind": "probe"}, xr.Dataset({"accuracy": ("layer", np.arange(3.0))}))
    report = render(Store(store.path), tmp_path / "r")
    assert report.results == {"probe": ["sst2"]} and "probing maps: run actstore probe --map" in report.skipped
    index, page = ((tmp_path / "r" / name).read_text() for name in ("index.md", "index.html"))
    assert "- `results/probe`: sst2; probing accuracy per layer (actstore probe)" in index
    assert "<code>results/probe</code>: sst2; probing accuracy per layer (actstore probe)" in page


def test_every_kind_of_result_the_report_draws_is_in_the_registry():
    """The report draws exactly the kinds ``results.KINDS`` gives a section, and reads no kind by a name KINDS lacks."""
    import re
    from pathlib import Path

    import actstore.report
    from actstore.report.contents import DRAWERS
    from actstore.results import KINDS

    assert set(DRAWERS) == {kind.name for kind in KINDS.values() if kind.section is not None}
    source = "\n".join(p.read_text() for p in Path(actstore.report.__file__).parent.glob("*.py"))
    named = set(re.findall(r'\.(?:find_)?results?\("([\w-]+)"', source))
    assert named and named <= KINDS.keys(), named - KINDS.keys()


def test_table_rows_put_each_model_in_a_row():
    table = {"sst2": {"mean": 0.9, "std": 0.01, "model": "a"}, "qnli": {"mean": 0.7, "std": 0.02, "model": "b"}}
    assert table_rows(table) == (["sst2", "qnli"], {"a": ["0.900 ± 0.010", "–"], "b": ["–", "0.700 ± 0.020"]})


def test_report_command(full_store, tmp_path):
    result = invoke("report", "--store", full_store.path, "--out", tmp_path / "r", "--neurons", "2")
    assert result.exit_code == 0, result.output
    assert "11 figure(s), accuracy table of 4 task(s), 8 neuron page(s)" in result.output
    assert len(list((tmp_path / "r" / "neurons").glob("*.html"))) == 8
    assert (tmp_path / "r" / "cross-suppression-zero-layer.svg").is_file()


def test_report_refuses_a_std_over_one_seed(tmp_path):
    store = Store(tmp_path / "one.zarr", mode="a")
    put_evaluation(store, "sst2", "sst2", [0.8], seeds=(0,))
    one_error_line(
        invoke("report", "--store", tmp_path / "one.zarr", "--out", tmp_path / "r"),
        "'sst2' is reported as mean ± std over seeds, but it has 1 seed",
    )
    one_error_line(invoke("report", "--store", tmp_path / "none.zarr", "--out", tmp_path / "r"), "no actstore store")


# ---- what a reviewer checks, on the Figure objects the report saves


def drawn(store: Store) -> dict[str, object]:
    skipped: list[str] = []
    figs = {d.stem: d for d in figures(store, skipped)}
    assert skipped == []
    return figs


def panels(fig) -> list:
    """The plotting axes of a figure, without colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def legend_texts(fig) -> list[str]:
    return [
        t.get_text()
        for legend in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        for t in legend.get_texts()
    ]


def test_every_figure_has_a_title_named_axes_and_no_empty_panel(full_store):
    figs = drawn(full_store)
    assert list(figs) == EXPECTED
    for stem, d in figs.items():
        assert d.figure.get_suptitle() == d.title and d.title, stem
        for ax in panels(d.figure):
            assert ax.get_visible() and ax.get_xlabel() and ax.get_ylabel(), (stem, ax.get_title())
            assert ax.lines or ax.patches or ax.images or ax.collections, (stem, ax.get_title())  # something drawn


def test_task_order_puts_clean_tasks_first_and_adversarial_ones_in_their_order():
    names = ["adv_qnli", "mine", "qnli", "adv_sst2", "ethics_deontology", "sst2", "tweets3:combined"]
    assert task_order(names) == [
        "sst2",
        "qnli",
        "ethics_deontology",
        "tweets3:combined",
        "mine",
        "adv_sst2",
        "adv_qnli",
    ]


def test_figures_show_tasks_in_that_order(full_store):
    figs = drawn(full_store)
    order = ["sst2", "imdb", "qnli", "adv_sst2"]
    for stem in ("predictivity-distribution", "neuron-accuracy-distribution"):
        assert [t.get_text() for t in figs[stem].figure.axes[0].get_xticklabels()] == order
    ax = panels(figs["correlation-sst2_imdb_qnli_adv_sst2"].figure)[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == order == [t.get_text() for t in ax.get_yticklabels()]
    titles = [ax.get_title() for ax in panels(figs["suppression-zero-layer"].figure)]
    assert [t.split(" ")[0] for t in titles] == order


def test_predictivity_figure_shows_the_top_neurons_and_chance(full_store):
    ax = drawn(full_store)["predictivity-distribution"].figure.axes[0]
    for i, task in enumerate(["sst2", "imdb", "qnli", "adv_sst2"]):
        pred = full_store.ranking(task)["predictivity"].values.ravel()
        dots = [line for line in ax.lines if line.get_marker() == "o" and np.allclose(line.get_xdata(), i + 0.25)]
        assert len(dots) == 1
        np.testing.assert_allclose(np.sort(dots[0].get_ydata()), np.sort(pred)[-10:])
        assert dots[0].get_ydata().max() == pred.max()  # the best neuron is drawn, not cut off at a whisker
    assert any(np.allclose(line.get_ydata(), 0.5) and line.get_linestyle() == ":" for line in ax.lines)
    assert {"chance", "top 10 neurons", "neuron predictivity (all neurons)"} <= set(legend_texts(ax.figure))


def test_suppression_panels_share_y_and_name_band_examples_and_whose_neurons(full_store):
    figs = drawn(full_store)
    for stem in ("suppression-zero-layer", "cross-suppression-zero-layer"):
        axes = panels(figs[stem].figure)
        assert all(axes[0].get_shared_y_axes().joined(axes[0], ax) for ax in axes)
        assert len({ax.get_ylim() for ax in axes}) == 1
        assert all("(n = 300)" in ax.get_title() for ax in axes)
        texts = legend_texts(figs[stem].figure)
        assert "± std over seeds" in texts and "± std over random draws" in texts
    cross = panels(figs["cross-suppression-zero-layer"].figure)
    assert len(cross) == len(figs["cross-suppression-zero-layer"].figure.axes) == 2  # one axes per result, none empty
    assert [ax.get_title() for ax in cross] == [
        "sst2 (n = 300) · neurons of adv_sst2",
        "adv_sst2 (n = 300) · neurons of sst2",
    ]
    texts = legend_texts(figs["cross-suppression-zero-layer"].figure)
    assert "skill neurons of the task after 'neurons of'" in texts and "the evaluated task's own skill neurons" in texts
    for ax, task in zip(cross, ["sst2", "adv_sst2"]):  # dotted: the task's own curve of the same mode (not noise)
        own = analysis.suppression_summary(full_store.result("suppression", f"{task}@{task}"))["skill_mean"].values
        dotted = [line for line in ax.lines if line.get_linestyle() == ":"]
        assert len(dotted) == 1 and np.allclose(dotted[0].get_ydata(), own)


def test_correlation_axes_are_named_the_diagonal_masked_and_zscore_titled(full_store):
    figs = drawn(full_store)
    for stem, zscored in (
        ("correlation-sst2_imdb_qnli_adv_sst2", False),
        ("correlation-sst2_imdb_qnli_adv_sst2.zscore", True),
    ):
        d = figs[stem]
        ax = panels(d.figure)[0]
        assert ax.get_xlabel().startswith("task (") and ax.get_ylabel().startswith("task (")
        assert ("z-scored" in d.title) == zscored == ("z-scored" in ax.get_xlabel())
        mask = np.ma.getmaskarray(ax.images[0].get_array())
        assert mask.diagonal().all() and mask.sum() == 4
        assert len(ax.texts) == 4 * 3  # no value written on the diagonal


def test_transfer_maps_flag_tasks_whose_own_prompts_are_at_chance(tmp_path):
    store = Store(tmp_path / "t.zarr", mode="a")
    for task in ("a", "b"):
        put_prompts(store, task)
    own = {"a": [0.9, 0.8], "b": [0.5, 0.6]}  # 17 of 20 right (p = 0.0013); 11 of 20 (p = 0.41)
    for prompts in ("a", "b"):
        for data in ("a", "b"):
            put_evaluation(store, data, prompts, own[data] if prompts == data else [0.5, 0.5])
    analysis.transfer(store, ["a", "b"])
    assert analysis.at_chance(store, ["a", "b"]) == ["b"]
    for kind in ("relative", "absolute"):
        d = drawn_some(store)[f"transfer-{kind}-a_b"]
        ax = panels(d.figure)[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b (at chance)"]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b (at chance)"]
        assert "not better than chance" in d.caption
        assert ax.get_xlabel() == "data task" and ax.get_ylabel() == "prompts of task"


def drawn_some(store: Store) -> dict[str, object]:
    """Figures of a store that holds only some results."""
    return {d.stem: d for d in figures(store, [])}


def test_adversarial_overlap_uses_a_readable_y_range():
    def result(task: str, overlap: list[float]) -> xr.Dataset:
        return xr.Dataset(
            {"overlap": ("percent", overlap), "chance": ("percent", [0.05, 0.10, 0.15]), "rho_mean": 0.1},
            coords={"percent": [5.0, 10.0, 15.0]},
            attrs={"spec": {"task": task, "clean": task[4:], "scope": "layer"}},
        )

    fig = adversarial_figure([result("adv_sst2", [0.07, 0.14, 0.20]), result("adv_qnli", [0.02, 0.08, 0.146])])
    axes = panels(fig)
    assert [ax.get_ylim() for ax in axes] == [(0.0, pytest.approx(1.15 * 0.20))] * 2  # shared, fitted to the largest


def test_the_token_figure_marks_the_mean_of_the_seeds_maxima_the_rank_table_prints():
    from actstore.report import TOKEN_PREDICTIVITY_LABEL, token_figure

    # seed 0 peaks at token 0, seed 1 at token 2: the mean of the maxima (0.85) is above the mean curve's peak
    accuracy = xr.DataArray(
        [[0.9, 0.6, 0.5], [0.55, 0.4, 0.8]], dims=("seed", "token"), coords={"seed": [0, 1], "token": [0, 1, 2]}
    )
    fig = token_figure(accuracy)
    ax = fig.axes[0]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and np.allclose(dashed[0].get_ydata(), 0.85)
    assert f"{TOKEN_PREDICTIVITY_LABEL} 0.8500" in legend_texts(fig)
    peaks = sorted(
        (float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in ax.lines if line.get_marker() == "^"
    )
    assert peaks == [(0.0, 0.9), (2.0, 0.8)]  # each seed's own best token


def test_a_neuron_page_says_what_its_predictivity_and_best_token_are(full_store, tmp_path):
    from actstore.ranking import top_neurons

    report = render(Store(full_store.path), tmp_path / "r", neuron_pages=1)
    row = top_neurons(full_store.ranking("sst2"), 1)[0]
    text = html.unescape((report.out / report.neurons["sst2"][0]["page"]).read_text())
    assert f"{row['predictivity']:.4f} (the mean over seeds of each seed's maximum)" in text
    assert f"best token {row['best_token']}: the prompt token that is best for the most seeds" in text
    assert f"{row['predictivity']:.4f} in the rank table" in text  # under the token figure that draws it
