"""A static HTML page per top skill neuron of each task, with its figures beside it."""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ..examples import top_examples
from ..ranking import top_neurons
from ..store import RankingReader, Store
from .draw import CHANCE, SKILL, _chance_line, _grid
from .order import _stem, task_order

#: how many of each task's top skill neurons get a page of their own
NEURON_PAGES = 10
#: examples at each end (highest and lowest activation) on a neuron's page
EXAMPLES = 5


@dataclass
class Activity:
    """One neuron's dev activity at its best token of each seed: the activations (None where the store kept only
    the above-baseline bits), whether each is above the train baseline (Eq. 3's test), the labels, the baselines."""

    seeds: list[int]
    label_names: list[str]
    labels: np.ndarray  # (example,)
    above: np.ndarray  # (seed, example) bool
    values: np.ndarray | None  # (seed, example)
    baseline: np.ndarray | None  # (seed,)

    def fraction_above(self) -> np.ndarray:
        """(seed, label): the share of each label's examples above the baseline."""
        return np.stack(
            [
                [
                    self.above[s, self.labels == c].mean() if (self.labels == c).any() else np.nan
                    for c in range(len(self.label_names))
                ]
                for s in range(len(self.seeds))
            ]
        )


def activities(store: Store, ranking: RankingReader, rows: list[dict]) -> dict[tuple[int, int], Activity]:
    """The ``Activity`` of each (layer, neuron) of ``rows`` (``top_neurons`` rows of the ranking), read once per layer
    from the ranked dev extraction; empty where the store has no such extraction (a ranking alone)."""
    spec = ranking.spec
    found: dict[tuple[int, int], Activity] = {}
    by_layer = defaultdict(list)
    for row in rows:
        by_layer[row["layer"], row["stack"]].append(row["neuron"])
    seeds = ranking.dataset["seed"].values.tolist()
    for (layer, stack), neurons in by_layer.items():
        if store.extraction_spec(spec.task, spec.split, stack) is None:
            continue
        ds = store.extraction(spec.task, spec.split, stack=stack)
        labels, kept_values = ds["label"].values, "acts" in ds
        where = {"seed": seeds, "layer": layer, "neuron": neurons}
        best = ranking.dataset["best_token"].sel(layer=layer, neuron=neurons).values  # (seed, k)
        if kept_values:
            block = store.activations(spec.task, spec.split, stack=stack).sel(where).values.astype(np.float64)
            base = store.baseline(spec.baseline_task, stack).sel(where).values  # (seed, token, k)
        else:  # a store that kept only the bits 1[a > baseline] (--keep bits)
            block = store.above(spec.task, spec.split, stack=stack).sel(where).values
        s = np.arange(len(seeds))
        for j, neuron in enumerate(neurons):
            at_best = block[s, :, best[:, j], j]  # (seed, example)
            if kept_values:
                baseline = base[s, best[:, j], j]
                activity = Activity(
                    seeds, list(ds.attrs["label_names"]), labels, at_best > baseline[:, None], at_best, baseline
                )
            else:
                activity = Activity(seeds, list(ds.attrs["label_names"]), labels, at_best, None, None)
            found[layer, neuron] = activity
    return found


def token_figure(accuracy: xr.DataArray) -> Figure:
    """Predictivity per prompt token, max(Acc, 1 − Acc) (Eq. 4), per seed (thin, its maximum marked) and averaged
    over seeds (thick); dashed, the neuron's predictivity (Eq. 5): the mean of the seeds' maxima, which lies above
    the thick curve's peak wherever the seeds peak at different tokens."""
    per_token = xr.ufuncs.maximum(accuracy, 1.0 - accuracy).transpose("seed", "token")
    fig = Figure(figsize=(6.0, 3.2), layout="constrained")
    ax = fig.add_subplot()
    tokens = per_token["token"].values
    for seed in per_token["seed"].values:
        curve = per_token.sel(seed=seed).values
        ax.plot(tokens, curve, color=SKILL, alpha=0.35, linewidth=0.8)
        ax.plot(tokens[np.nanargmax(curve)], np.nanmax(curve), color=SKILL, marker="^", markersize=5, alpha=0.6)
    ax.plot(tokens, per_token.mean("seed"), color=SKILL, linewidth=2, marker="o", markersize=3)
    predictivity = float(per_token.max("token").mean("seed"))
    ax.axhline(predictivity, color=SKILL, linestyle="--", linewidth=1)
    _chance_line(ax)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("prompt token")
    ax.set_ylabel("predictivity max(Acc, 1 − Acc)")
    fig.legend(
        handles=[
            Line2D([], [], color=SKILL, linewidth=2, label="mean over seeds"),
            Line2D([], [], color=SKILL, alpha=0.35, label="one seed"),
            Line2D([], [], color=SKILL, alpha=0.6, marker="^", linestyle="", label="a seed's best token"),
            Line2D([], [], color=SKILL, linestyle="--", label=f"{TOKEN_PREDICTIVITY_LABEL} {predictivity:.4f}"),
            Line2D([], [], color=CHANCE, linestyle=":", label="chance"),
        ],
        loc="outside lower center",
        ncols=3,
        fontsize=8,
    )
    return fig


#: the token figure's name for the dashed line: Eq. 5, the number the rank table prints
TOKEN_PREDICTIVITY_LABEL = "predictivity (Eq. 5) = mean of the seeds' maxima:"


def activity_figure(activity: Activity) -> Figure:
    """Per seed, the neuron's activations at its best token as a histogram per label with the baseline as a vertical
    line; for a store without activations, the share of each label's examples above the baseline."""
    fractions = activity.fraction_above()
    colors = [f"C{c}" for c in range(len(activity.label_names))]
    if activity.values is None:
        fig = Figure(figsize=(6.0, 3.2), layout="constrained")
        ax = fig.add_subplot()
        width = 0.8 / len(activity.label_names)
        for c, name in enumerate(activity.label_names):
            bars = ax.bar(
                np.arange(len(activity.seeds)) + c * width, fractions[:, c], width, color=colors[c], label=name
            )
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(np.arange(len(activity.seeds)) + 0.4 - width / 2, [f"seed {s}" for s in activity.seeds])
        ax.set_ylim(0, 1.08)
        ax.set_xlabel("prompt (seed), at its best token")
        ax.set_ylabel("share above the baseline")
        fig.legend(loc="outside lower center", ncols=len(colors), fontsize=8)
        return fig
    assert activity.baseline is not None  # the activations are kept with their baselines (``activities``)
    fig, axes = _grid(len(activity.seeds), width=3.4, height=2.6)
    for s, (ax, seed) in enumerate(zip(axes, activity.seeds)):
        values = activity.values[s]
        bins = np.histogram_bin_edges(values, bins=30).tolist()
        for c, name in enumerate(activity.label_names):
            ax.hist(
                values[activity.labels == c],
                bins=bins,
                histtype="step",
                color=colors[c],
                linewidth=1.2,
                label=f"{name}: {fractions[s, c]:.0%} above",
            )
        ax.axvline(activity.baseline[s], color="black", linestyle="--", linewidth=1)
        ax.set_title(f"seed {seed}", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(4))  # tiny spreads have long tick labels
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel("activation at the best token")
        ax.set_ylabel("examples")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.legend(
        handles=[Line2D([], [], color="black", linestyle="--", label="train baseline (Eq. 2)")],
        loc="outside lower center",
        fontsize=8,
    )
    return fig


def comparable(rankings: dict[str, RankingReader], task: str) -> dict[str, RankingReader]:
    """The rankings whose neurons are ``task``'s neurons: made with the same model (name and revision), same shape."""
    model, shape = rankings[task].spec.model, rankings[task].predictivity.shape
    return {
        other: ranking
        for other, ranking in rankings.items()
        if (ranking.spec.model.name, ranking.spec.model.revision) == (model.name, model.revision)
        and ranking.predictivity.shape == shape
    }


def rank_rows(rankings: dict[str, RankingReader], layer: int, neuron: int) -> list[dict]:
    """The neuron's place in each ranking (``comparable`` ones): 1-based global and in-layer rank, predictivity."""
    rows = []
    for task, reader in rankings.items():
        ranking = reader.dataset
        rows.append(
            {
                "task": task,
                "rank_global": int(ranking["rank_global"].values[layer, neuron]) + 1,
                "of": int(ranking["rank_global"].size),
                "rank_in_layer": int(ranking["rank_in_layer"].values[layer, neuron]) + 1,
                "in_layer": int(ranking.sizes["neuron"]),
                "predictivity": float(ranking["predictivity"].values[layer, neuron]),
            }
        )
    return rows


def write_neuron_pages(store: Store, out: Path, k: int = NEURON_PAGES) -> dict[str, list[dict]]:
    """For the top ``k`` neurons of every ranked task, ``out/neurons/<task>-L<layer>-N<neuron>.html`` with its figures
    beside it; returns per task the ``top_neurons`` rows with each page's path relative to ``out``."""
    ranked = task_order(store.ranked_tasks())
    readers = {task: store.ranking_reader(task) for task in ranked}
    if not readers:
        return {}
    folder = out / "neurons"
    folder.mkdir(parents=True, exist_ok=True)
    pages = {}
    for task, reader in readers.items():
        ranking = reader.dataset
        rows = top_neurons(ranking, k)
        found = activities(store, reader, rows)
        peers = comparable(readers, task)
        for row in rows:
            layer, neuron = row["layer"], row["neuron"]
            stem = f"{_stem(task)}-L{layer}-N{neuron}"
            row["page"] = f"neurons/{stem}.html"
            name = f"{task}, layer {layer} ({row['stack']}), neuron {neuron}"
            fig = token_figure(ranking["accuracy"].sel(layer=layer, neuron=neuron))
            fig.suptitle(f"Predictivity per prompt token: {name}")
            fig.savefig(folder / f"{stem}-tokens.png", dpi=110, bbox_inches="tight")
            sections = [
                (
                    "Predictivity per prompt token",
                    f"<img src='{stem}-tokens.png' alt='predictivity per token'>"
                    "<p>max(Acc, 1 − Acc) of Eq. 4 at every prompt token: thick the mean over seeds, thin each "
                    "seed with its best token marked; dashed, the neuron's predictivity (Eq. 5), "
                    f"{row['predictivity']:.4f} in the rank table: the mean over seeds of each seed's maximum, "
                    "at each seed's own best token.</p>",
                )
            ]
            activity = found.get((layer, neuron))
            if activity is not None:
                fig = activity_figure(activity)
                fig.suptitle(
                    f"{'Activation' if activity.values is not None else 'Share above the baseline'} by label: {name}"
                )
                fig.savefig(folder / f"{stem}-activity.png", dpi=110, bbox_inches="tight")
                what = (
                    "histograms of its activations on the dev examples of each label, the train baseline dashed"
                    if activity.values is not None
                    else "the share of each label's dev examples above the train baseline (the store kept only the "
                    "above-baseline bits, not the activations)"
                )
                sections.append(
                    (
                        "Activation by label against the baseline",
                        f"<img src='{stem}-activity.png' alt='activation by label'><p>At each seed's best "
                        f"token: {html.escape(what)}.</p>",
                    )
                )
            else:
                sections.append(
                    (
                        "Activation by label against the baseline",
                        "<p>Not in the store: it holds this ranking but not the dev extraction it came from.</p>",
                    )
                )
            sections.append(("Rank in each task", _rank_table(rank_rows(peers, layer, neuron), task)))
            if activity is not None:
                sections.append(_examples_section(store, reader, layer, neuron, row["best_token"]))
            _write_page(
                folder / f"{stem}.html",
                f"Skill neuron: {name}",
                f"Rank {row['rank']} of {ranking['rank_global'].size} in {task} by predictivity (Eq. 5) "
                f"{row['predictivity']:.4f} (the mean over seeds of each seed's maximum); best token "
                f"{row['best_token']}: the prompt token that is best for the most seeds (the rank table's).",
                sections,
            )
        pages[task] = rows
    return pages


def _examples_section(store: Store, reader: RankingReader, layer: int, neuron: int, most_seeds: int) -> tuple[str, str]:
    """The ``EXAMPLES`` examples at each end of the neuron (``examples.top_examples``) for the ranking's first seed at
    that seed's best token (named against ``most_seeds``, the best token of the most seeds), with their texts, labels
    and the prompted model's predictions."""
    spec, ranking = reader.spec, reader.dataset
    seed = int(ranking["seed"].values[0])
    token = int(ranking["best_token"].sel(seed=seed, layer=layer, neuron=neuron))
    found = top_examples(store, spec.task, layer, neuron, token=token, seed=seed, k=EXAMPLES, split=spec.split)
    by_value = found.ranked_by == "activation"
    ends = (
        ("Highest activations", "Lowest activations")
        if by_value
        else ("Examples its bit gets right", "Examples its bit gets wrong")
    )
    head = (
        f"<tr><th>{'activation' if by_value else 'above the baseline'}</th><th>label</th>"
        "<th>model's prediction</th><th>text</th></tr>"
    )

    def table(rows: list[dict]) -> str:
        cells = [
            (
                f"{r['activation']:.4g}" if by_value else ("yes" if r["above"] else "no"),
                r["label"],
                r["prediction"] or "–",
                r["text"] if r["text"] is not None else "(text not stored)",
            )
            for r in rows
        ]
        return (
            "<table>"
            + head
            + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in cells)
            + "</table>"
        )

    baseline = f"; train baseline {found.baseline:.4g}" if found.baseline is not None else ""
    which = (
        "the best token of the most seeds too"
        if token == most_seeds
        else f"not the best token of the most seeds, {most_seeds}, that the rank table shows"
    )
    body = (
        f"<p>Seed {seed} at its own best token {token} ({which}; {html.escape(spec.split)} split{baseline}).</p>"
        + "".join(f"<h3>{title}</h3>{table(rows)}" for title, rows in zip(ends, (found.top, found.bottom)))
    )
    return f"Top and bottom examples (seed {seed})", body


def _rank_table(rows: list[dict], task: str) -> str:
    head = "<tr><th>task</th><th>rank overall</th><th>rank in its layer</th><th>predictivity</th></tr>"
    body = "".join(
        f"<tr{' class=this' if r['task'] == task else ''}><td>{html.escape(r['task'])}</td>"
        f"<td>{r['rank_global']} of {r['of']}</td><td>{r['rank_in_layer']} of {r['in_layer']}</td>"
        f"<td>{r['predictivity']:.4f}</td></tr>"
        for r in rows
    )
    return f"<table>{head}{body}</table><p>Every ranking of the store made with the same model; rank 1 is best.</p>"


STYLE = (
    "<style>body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em}img{max-width:100%}"
    "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}tr.this{font-weight:bold}</style>"
)


def _write_page(path: Path, title: str, lead: str, sections: list[tuple[str, str]]) -> None:
    """A static page: title, a link back to the index, a lead paragraph, then (heading, HTML body) sections."""
    parts = [
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}",
        "<p><a href='../index.html'>← report index</a></p>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(lead)}</p>",
    ]
    parts += [f"<h2>{html.escape(heading)}</h2>{body}" for heading, body in sections]
    path.write_text("\n".join(parts) + "\n</html>\n")
