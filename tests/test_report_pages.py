"""`actstore report`'s page per top skill neuron: its numbers against the ranking and the stored activations, its
links, and that the index and a neuron page open in a real browser (headless Chromium)."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from matplotlib import image

from actstore.ranking import rank, top_neurons
from actstore.report import activities, activity_figure, comparable, rank_rows, render
from actstore.store import RankingReader, Store
from helpers import run_toy
from test_analysis import MODEL, accuracies, put_ranking
from test_report import full_store  # noqa: F401  (the fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Links(HTMLParser):
    """Every src and href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.targets += [value for name, value in attrs if name in ("src", "href") and value]


def missing_files(page: Path) -> list[str]:
    """The links of a page that do not resolve to a file beside it (relative links only: the report is static)."""
    parser = Links()
    parser.feed(page.read_text())
    assert parser.targets, page
    missing = []
    for target in parser.targets:
        url = urlparse(target)
        assert not url.scheme and not url.netloc, f"{page.name} links outside the report: {target}"
        if not (page.parent / unquote(url.path)).is_file():
            missing.append(target)
    return missing


@pytest.fixture(params=["acts", "bits"])
def toy_report(request, tiny_model_dir, data_dir, tmp_path):
    """A report of a real extraction (tiny BERT, real SST-2 sentences) that kept activations, or only bits."""
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir("bert"), data_dir, n_dev=12, keep=request.param)
    rank(store, "toy")
    report = render(Store(store.path), tmp_path / "report", neuron_pages=3)
    return store, report


def test_activity_at_the_best_token_gives_back_the_ranked_accuracy(toy_report):
    store, _ = toy_report
    reader = store.ranking_reader("toy")
    ranking = reader.dataset
    rows = top_neurons(ranking, 3)
    found = activities(store, reader, rows)
    kept_values = "acts" in store.extraction("toy")
    acts = store.extraction("toy")["acts"] if kept_values else None
    for row in rows:
        activity = found[row["layer"], row["neuron"]]
        assert (activity.values is not None) == kept_values
        for s, seed in enumerate(activity.seeds):
            at = {"seed": seed, "layer": row["layer"], "neuron": row["neuron"]}
            best = int(ranking["best_token"].sel(at))
            accuracy = float(ranking["accuracy"].sel({**at, "token": best}))
            assert (activity.above[s] == activity.labels).mean() == pytest.approx(accuracy)  # Eq. 3 from its parts
            if kept_values:
                np.testing.assert_array_equal(activity.values[s], acts.sel({**at, "token": best}).values)
    activity = found[rows[0]["layer"], rows[0]["neuron"]]
    fractions = activity.fraction_above()
    for c in (0, 1):
        np.testing.assert_array_equal(fractions[:, c], activity.above[:, activity.labels == c].mean(axis=1))
    fig = activity_figure(activity)
    assert len(fig.axes) == (2 if kept_values else 1)  # a histogram panel per seed, or one bar chart
    assert all(ax.get_xlabel() and ax.get_ylabel() and (ax.patches or ax.lines) for ax in fig.axes)
    if kept_values:  # the baseline drawn where it is, per seed
        assert [ax.lines[-1].get_xdata()[0] for ax in fig.axes] == list(activity.baseline)


def extreme_examples(store: Store, row: dict) -> list[str]:
    """Texts the neuron's page must show for seed 0 at its best token: the highest and lowest activation, or on a
    bits store the first example its bit gets right and the first it gets wrong (Eq. 4: an inhibitory neuron
    predicts label 1 below its baseline)."""
    ds = store.extraction("toy")
    at = {"seed": 0, "layer": row["layer"], "neuron": row["neuron"]}
    at["token"] = int(store.ranking("toy")["best_token"].sel(at))
    texts, labels = ds["text"].values[:, 0], ds["label"].values
    if "acts" in ds:
        values = ds["acts"].sel(at).values.astype(np.float64)
        return [texts[np.argmax(values)], texts[np.argmin(values)]]
    above = store.above("toy").sel(at).values
    predicts = above if (above == labels).mean() >= 0.5 else ~above
    right = predicts == (labels == 1)
    return [texts[np.flatnonzero(right)[0]]] + ([texts[np.flatnonzero(~right)[0]]] if (~right).any() else [])


def test_every_top_neuron_has_a_page_linked_from_the_index(toy_report):
    store, report = toy_report
    out = report.out
    rows = report.neurons["toy"]
    ranked = top_neurons(store.ranking("toy"), 3)
    assert [(r["layer"], r["neuron"]) for r in rows] == [(r["layer"], r["neuron"]) for r in ranked]
    index = (out / "index.html").read_text()
    kept_values = "acts" in store.extraction("toy")
    for row in rows:
        page = out / row["page"]
        assert page.parent == out / "neurons" and page.name == f"toy-L{row['layer']}-N{row['neuron']}.html"
        assert f"href='{row['page']}'" in index and f"]({row['page']})" in (out / "index.md").read_text()
        text = page.read_text()
        assert "Predictivity per prompt token" in text and "Rank in each task" in text
        assert f"<td>1 of {store.ranking('toy')['rank_global'].size}</td>" in text or row["rank"] != 1
        assert ("histograms of its activations" in text) == kept_values
        assert ("kept only the above-baseline bits" in text) == (not kept_values)
        for example in extreme_examples(store, row):
            assert f"<td>{html.escape(example)}</td>" in text
        own = int(store.ranking("toy")["best_token"].sel(seed=0, layer=row["layer"], neuron=row["neuron"]))
        assert f"Seed 0 at its own best token {own} (" in text  # the examples' token, named against the table's
        assert (f"not the best token of the most seeds, {row['best_token']}," in text) == (own != row["best_token"])
        assert missing_files(page) == []
    assert missing_files(out / "index.html") == []


def test_a_neuron_page_ranks_the_neuron_in_every_task_of_its_model(full_store, tmp_path):  # noqa: F811
    other = replace(MODEL, revision="r2")  # the same shape, another model: its neuron 3 is not sst2's neuron 3
    put_ranking(full_store, "qqp", accuracies(7), model=other)
    report = render(Store(full_store.path), tmp_path / "r", neuron_pages=2)
    assert list(report.neurons) == ["sst2", "imdb", "qqp", "qnli", "adv_sst2"]
    row = report.neurons["sst2"][0]
    rankings = {t: full_store.ranking_reader(t) for t in report.neurons}
    assert list(comparable(rankings, "sst2")) == ["sst2", "imdb", "qnli", "adv_sst2"]
    assert list(comparable(rankings, "qqp")) == ["qqp"]
    ranks = rank_rows(comparable(rankings, "sst2"), row["layer"], row["neuron"])
    assert [r["task"] for r in ranks] == ["sst2", "imdb", "qnli", "adv_sst2"]
    for r in ranks:
        ranking = rankings[r["task"]].dataset
        assert r["rank_global"] == int(ranking["rank_global"].values[row["layer"], row["neuron"]]) + 1
        assert r["rank_in_layer"] == int(ranking["rank_in_layer"].values[row["layer"], row["neuron"]]) + 1
        assert r["predictivity"] == float(ranking["predictivity"].values[row["layer"], row["neuron"]])
    assert ranks[0]["rank_global"] == 1  # sst2's own top neuron
    text = (report.out / row["page"]).read_text()
    for r in ranks:
        assert f"<td>{r['rank_global']} of {r['of']}</td><td>{r['rank_in_layer']} of {r['in_layer']}</td>" in text
    assert "<td>qqp</td>" not in text
    assert "not the dev extraction" in text  # a ranking alone: no activations to show, and the page says so
    assert missing_files(report.out / row["page"]) == [] and missing_files(report.out / "index.html") == []


def chromium(*args: str) -> str:
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(page: Path, shot: Path) -> np.ndarray:
    """The page as headless Chromium draws it, RGB floats."""
    chromium(f"--screenshot={shot}", "--window-size=1200,900", page.resolve().as_uri())
    return image.imread(shot)[..., :3]


PROBE = (
    "<script>addEventListener('load', () => {const broken = [...document.images].filter(i => !i.complete || "
    "i.naturalWidth === 0).map(i => i.getAttribute('src')); document.body.dataset.broken = broken.join(' '); "
    "document.body.dataset.images = document.images.length;});</script>"
)


def images_in_browser(page: Path) -> tuple[int, str]:
    """(images on the page, the src of those the browser could not load): a copy of the page beside it, with a script
    that lists them once the page has loaded, read back from Chromium's DOM dump."""
    probe = page.with_name(f"probe-{page.name}")
    probe.write_text(page.read_text() + PROBE)
    try:
        dom = chromium("--virtual-time-budget=10000", "--dump-dom", probe.resolve().as_uri())
    finally:
        probe.unlink()
    body = re.search(r'<body data-broken="([^"]*)" data-images="(\d+)"', dom)
    assert body, dom[:2000]
    return int(body.group(2)), body.group(1)


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not on PATH: `make test` installs the Debian package "
    "where apt-get is available, and this machine has neither",
)
def test_the_index_and_a_neuron_page_open_in_a_real_browser(toy_report, tmp_path):
    _, report = toy_report
    for page, n_images in (
        (report.out / "index.html", len(report.figures)),
        (report.out / report.neurons["toy"][0]["page"], 2),
    ):
        pixels = screenshot(page, tmp_path / f"{page.stem}.png")
        assert pixels.shape[:2] == (900, 1200)
        assert (pixels.min(axis=2) < 0.9).mean() > 0.02, page  # not blank: text and figures cover the page
        saturation = pixels.max(axis=2) - pixels.min(axis=2)
        assert (saturation > 0.3).mean() > 0.002, page  # the figures' colours are drawn, not only text
        assert images_in_browser(page) == (n_images, ""), page  # every image loaded
        assert missing_files(page) == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH")
def test_the_browser_probe_sees_a_missing_image(tmp_path):
    page = tmp_path / "p.html"
    page.write_text("<!doctype html><html><body><img src='here.png'><img src='gone.png'></body></html>")
    image.imsave(tmp_path / "here.png", np.random.default_rng(0).random((20, 30, 3)))
    assert images_in_browser(page) == (2, "gone.png")
    (tmp_path / "here.png").write_text("not a PNG")
    assert images_in_browser(page) == (2, "here.png gone.png")


def test_a_decoder_neuron_reads_the_decoder_extraction(tiny_model_dir, data_dir, tmp_path):
    """T5: a neuron of the decoder stack is read from the decoder's extraction and baseline, at its one token."""
    store = run_toy(tmp_path / "t5.zarr", tiny_model_dir("t5"), data_dir, n_dev=12)
    ranking = rank(store, "toy")
    stacks = ranking["layer_stack"].values
    layer = int(np.flatnonzero(stacks == "decoder")[0])
    rows = [{"layer": layer, "stack": "decoder", "neuron": n} for n in (0, 5)] + [
        {"layer": 0, "stack": "encoder", "neuron": 3}
    ]
    found = activities(store, RankingReader.from_dataset(ranking), rows)
    decoder = store.extraction("toy", stack="decoder")["acts"]
    for row in rows:
        activity = found[row["layer"], row["neuron"]]
        for s, seed in enumerate(activity.seeds):
            at = {"seed": seed, "layer": row["layer"], "neuron": row["neuron"]}
            best = int(ranking["best_token"].sel(at))
            assert row["stack"] == "encoder" or best == 0
            accuracy = float(ranking["accuracy"].sel({**at, "token": best}))
            assert (activity.above[s] == activity.labels).mean() == pytest.approx(accuracy)
            if row["stack"] == "decoder":
                np.testing.assert_array_equal(activity.values[s], decoder.sel({**at, "token": 0}).values)
