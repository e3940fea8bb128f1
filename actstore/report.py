"""Every figure of the paper from what a store holds, as PNG and SVG, plus an index page (Markdown and HTML).

Numbers come from ``actstore.analysis`` (and results stored by ``transfer``, ``correlate``, ``suppress``,
``compare-adversarial``); this module only draws. It uses matplotlib's ``Figure`` directly (Agg canvas, no
pyplot state), so it runs headless and in threads. A figure whose data the store lacks is skipped with a
note naming the command that makes it.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from . import analysis
from .errors import ActstoreError
from .store import Store
from .tasks import source_task

FORMATS = ("png", "svg")
#: the top share of all neurons whose layers the layer figure shows
LAYER_PERCENT = 1.0
SKILL, RANDOM, OWN = "tab:blue", "tab:orange", "tab:gray"


@dataclass
class Report:
    """What ``render`` wrote: figures (title, file stem, caption), notes on skipped figures, Table 1 rows."""

    out: Path
    figures: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    table: dict[str, dict] = field(default_factory=dict)

    def files(self) -> list[Path]:
        return [self.out / f"{stem}.{fmt}" for _, stem, _ in self.figures for fmt in FORMATS] + \
               [self.out / "index.md", self.out / "index.html"]


def render(store: Store, out: str | Path) -> Report:
    """Draw every figure the store has data for into ``out`` and write index.md and index.html there."""
    report = Report(Path(out))
    ranked = store.ranked_tasks()
    report.table = analysis.accuracy_table(store, _accuracy_tasks(store, ranked))
    try:
        report.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ActstoreError(f"cannot write the report to {report.out}: {exc.strerror or exc}") from None

    def save(fig: Figure, title: str, stem: str, caption: str) -> None:
        for fmt in FORMATS:
            fig.savefig(report.out / f"{stem}.{fmt}", dpi=150, bbox_inches="tight")  # nothing clipped at the edges
        report.figures.append((title, stem, caption))

    for name in _or_note(report, store.results("transfer"), "transferability: run actstore transfer --tasks A,B,..."):
        ds = store.result("transfer", name)
        save(heatmap(ds["relative_mean"], "data", "prompts", "accuracy relative to own prompts", "{:.2f}"),
             f"Transferability (relative): {name}", f"transfer-relative-{_stem(name)}",
             "Accuracy of the row task's prompts on the column task's data over the column task's own prompts, "
             "per seed, averaged over seeds (Figures 1/6).")
        save(heatmap(ds["accuracy_mean"], "data", "prompts", "accuracy", "{:.2f}"),
             f"Transferability (absolute): {name}", f"transfer-absolute-{_stem(name)}",
             "Mean accuracy over seeds of the row task's prompts on the column task's data.")
    if _or_note(report, ranked, "distributions: run actstore rank for at least one task"):
        rows = analysis.distributions(store, ranked)
        save(predictivity_figure(rows), "Neuron predictivity and model accuracy", "predictivity-distribution",
             "Boxes: predictivity (Eq. 5) of every neuron, whiskers at 1.5 IQR, no fliers; bars: model accuracy, "
             "mean ± std over seeds (Figure 2).")
        save(accuracy_figure(rows), "Neuron accuracy", "neuron-accuracy-distribution",
             "Accuracy (Eq. 3) of every neuron at every prompt token and seed; 0.5 is chance (Figure 8).")
        save(layer_figure(analysis.skill_layers(store, ranked, LAYER_PERCENT)), "Where the skill neurons are",
             "skill-neuron-layers", f"Share of each task's top {LAYER_PERCENT:g} % neurons (by predictivity, over all "
             "layers) in each layer; E = encoder, D = decoder (T5's decoder at the first decoding step).")
    for name in _or_note(report, store.results("correlation"), "task specificity: run actstore correlate --tasks A,B"):
        ds = store.result("correlation", name)
        zscored = ds.attrs["spec"]["normalize"] == "zscore"
        save(heatmap(ds["rho_mean"], "task_b", "task_a", "Spearman's ρ, mean over layers", "{:.2f}",
                     marks=ds["p_max"] < 0.05, vmin=-1, vmax=1, cmap="RdBu_r"),
             f"Task specificity{' (z-scored)' if zscored else ''}: {name}", f"correlation-{_stem(name)}",
             "Spearman rank correlation of the tasks' neuron predictivities per layer, averaged over layers; "
             "* marks p < 0.05 in every layer" + (", after z-scoring each neuron across the tasks (Figure 7)."
                                                   if zscored else " (Figure 3)."))
    curves = {name: store.result("suppression", name) for name in store.results("suppression")}
    own = {n: ds for n, ds in curves.items() if ds.attrs["spec"]["task"] == ds.attrs["spec"]["neurons_from"]}
    cross = {n: ds for n, ds in curves.items() if n not in own}
    for kind, group, command in (("suppression", own, "--task A"), ("cross-suppression", cross, "--task B --neurons-from A")):
        for (mode, scope), members in _or_note(report, _by_setting(group), f"{kind}: run actstore suppress {command}").items():
            save(suppression_figure(members, own), f"{kind.capitalize()} ({mode}, {scope})", f"{kind}-{mode}-{scope}",
                 "Accuracy against the share of neurons suppressed: skill neurons (solid, mean ± std over seeds) and "
                 "as many random neurons per layer (dashed, mean ± std over draws)"
                 + ("; dotted: the task's own skill neurons." if kind == "cross-suppression" else "."))
    names = _or_note(report, store.results("adversarial"), "adversarial predictivity: run actstore compare-adversarial")
    if names:
        save(adversarial_figure([store.result("adversarial", n) for n in names]), "Adversarial predictivity",
             "adversarial-overlap", "Share of the clean task's top x % neurons that are also in the adversarial "
             "task's top x % (solid), against chance (dashed).")
    _write_index(report)
    return report


def _accuracy_tasks(store: Store, ranked: list[str]) -> list[str]:
    """Ranked tasks, then tasks evaluated with their own prompts only."""
    evaluated = [n.split("@")[0] for n in store.results("evaluation")
                 if n.split("@")[1] == source_task(n.split("@")[0])]
    return list(dict.fromkeys([*ranked, *evaluated]))


def _or_note(report: Report, items, note: str):
    if not items:
        report.skipped.append(note)
    return items


def _by_setting(results: dict[str, xr.Dataset]) -> dict[tuple[str, str], list[xr.Dataset]]:
    groups = defaultdict(list)
    for _, ds in sorted(results.items()):
        groups[ds.attrs["spec"]["mode"], ds.attrs["spec"]["scope"]].append(ds)
    return dict(groups)


def _stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# ---- figures: each returns a Figure, so tests and notebooks can use them without writing files

def heatmap(matrix: xr.DataArray, x: str, y: str, label: str, fmt: str, *, marks: xr.DataArray | None = None,
            vmin: float | None = None, vmax: float | None = None, cmap: str = "viridis") -> Figure:
    """A labelled (y, x) matrix with its values written in the cells."""
    matrix = matrix.transpose(y, x)
    n_rows, n_cols = matrix.shape
    fig = Figure(figsize=(1.6 + 0.9 * n_cols, 1.2 + 0.7 * n_rows), layout="constrained")
    ax = fig.add_subplot()
    values = matrix.values
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    fig.colorbar(image, ax=ax, label=label, shrink=0.9)
    ax.set_xticks(range(n_cols), matrix[x].values.tolist(), rotation=45, ha="right")
    ax.set_yticks(range(n_rows), matrix[y].values.tolist())
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    starred = np.zeros(values.shape, bool) if marks is None else marks.transpose(y, x).values
    for (i, j), value in np.ndenumerate(values):
        r, g, b, _ = image.cmap(image.norm(value))
        ax.text(j, i, fmt.format(value) + ("*" if starred[i, j] else ""), ha="center", va="center", fontsize=8,
                color="white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black")
    return fig


def predictivity_figure(rows: list[dict]) -> Figure:
    """Figure 2: predictivity boxes over model-accuracy bars, one position per task."""
    fig = Figure(figsize=(1.5 + 1.0 * len(rows), 3.8), layout="constrained")
    ax = fig.add_subplot()
    positions = np.arange(len(rows))
    for i, row in enumerate(rows):
        acc = row["model_accuracy"]
        if acc is not None:
            ax.bar(i, float(acc.mean()), width=0.7, color="tab:green", alpha=0.35,
                   yerr=float(acc.std()) if acc.size > 1 else None, capsize=4, error_kw={"ecolor": "darkgreen"})
    ax.bxp([r["predictivity"] for r in rows], positions=positions, widths=0.35, showmeans=False,
           patch_artist=True, boxprops={"facecolor": "tab:blue", "alpha": 0.8}, medianprops={"color": "black"})
    ax.set_xticks(positions, [r["task"] for r in rows], rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("task")
    ax.set_ylabel("accuracy / predictivity")
    fig.legend(handles=[Patch(color="tab:green", alpha=0.35, label="model accuracy (mean ± std)"),
                        Patch(color="tab:blue", alpha=0.8, label="neuron predictivity")],
               loc="outside lower center", ncols=2, fontsize=8)
    return fig


def accuracy_figure(rows: list[dict]) -> Figure:
    """Figure 8: the distribution of neuron accuracies per task around chance."""
    fig = Figure(figsize=(1.5 + 1.0 * len(rows), 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.bxp([r["accuracy"] for r in rows], positions=range(len(rows)), widths=0.5, patch_artist=True,
           boxprops={"facecolor": "tab:purple", "alpha": 0.6}, medianprops={"color": "black"})
    ax.axhline(0.5, color="gray", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(range(len(rows)), [r["task"] for r in rows], rotation=30, ha="right")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("task")
    ax.set_ylabel("neuron accuracy")
    fig.legend(loc="outside lower center", fontsize=8)
    return fig


def layer_figure(shares: xr.DataArray) -> Figure:
    """Per task, the share of its top neurons in each layer; layers labelled by stack (E0…, D0…)."""
    stacks = shares["stack"].values.tolist()
    labels = [f"{stack[0].upper()}{i - stacks.index(stack)}" for i, stack in enumerate(stacks)]
    fig = Figure(figsize=(2.0 + 0.45 * len(labels), 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    for task in shares["task"].values:
        ax.plot(x, shares.sel(task=task).values, marker="o", markersize=3, label=str(task))
    if "decoder" in stacks:
        ax.axvline(stacks.index("decoder") - 0.5, color="gray", linestyle=":", linewidth=1)
    ax.set_xticks(x, labels)
    ax.set_xlabel("layer")
    ax.set_ylabel("share of the top neurons")
    fig.legend(loc="outside right center", fontsize=8)
    return fig


def _grid(n: int, width: float = 3.2, height: float = 2.8) -> tuple[Figure, list[Axes]]:
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, height * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def _band(ax: Axes, x: np.ndarray, mean: xr.DataArray, std: xr.DataArray, color: str, style: str) -> None:
    ax.plot(x, mean, color=color, linestyle=style, marker="o", markersize=3)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)


def suppression_figure(results: list[xr.Dataset], own: dict[str, xr.Dataset]) -> Figure:
    """One panel per result: skill solid vs random dashed; for cross suppression the task's own skill curve dotted."""
    fig, axes = _grid(len(results))
    own_by_task = {ds.attrs["spec"]["task"]: ds for ds in own.values()}
    dotted = False
    for ax, result in zip(axes, results):
        spec, curves = result.attrs["spec"], analysis.suppression_summary(result)
        x = result["percent"].values
        _band(ax, x, curves["skill_mean"], curves["skill_std"], SKILL, "-")
        _band(ax, x, curves["random_mean"], curves["random_std"], RANDOM, "--")
        reference = own_by_task.get(spec["task"])
        if spec["neurons_from"] != spec["task"] and reference is not None and reference.attrs["spec"]["mode"] == spec["mode"]:
            ax.plot(reference["percent"], analysis.suppression_summary(reference)["skill_mean"], color=OWN, linestyle=":")
            dotted = True
        cross = spec["neurons_from"] != spec["task"]
        ax.set_title(f"{spec['task']} · neurons of {spec['neurons_from']}" if cross else spec["task"], fontsize=10)
        ax.set_xlabel("neurons suppressed (%)")
        ax.set_ylabel("accuracy")
    handles = [Line2D([], [], color=SKILL, label="skill neurons"), Line2D([], [], color=RANDOM, linestyle="--", label="random neurons")]
    if dotted:
        handles.append(Line2D([], [], color=OWN, linestyle=":", label="task's own skill neurons"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    return fig


def adversarial_figure(results: list[xr.Dataset]) -> Figure:
    """One panel per adversarial task: top-x % overlap with the clean task's skill neurons against chance."""
    fig, axes = _grid(len(results))
    for ax, result in zip(axes, results):
        spec = result.attrs["spec"]
        x = result["percent"].values
        ax.plot(x, result["overlap"], color=SKILL, marker="o", markersize=3)
        ax.plot(x, result["chance"], color="gray", linestyle="--")
        ax.set_ylim(0, 1)
        ax.set_title(f"{spec['task']} vs {spec['clean']} (ρ = {float(result['rho_mean']):.2f})", fontsize=10)
        ax.set_xlabel(f"top neurons ({'per layer' if spec['scope'] == 'layer' else 'overall'}, %)")
        ax.set_ylabel("share of clean top neurons")
    fig.legend(handles=[Line2D([], [], color=SKILL, label="overlap of top sets"),
                        Line2D([], [], color="gray", linestyle="--", label="chance")],
               loc="outside lower center", ncols=2, fontsize=8)
    return fig


# ---- the index page

def table_rows(table: dict[str, dict]) -> tuple[list[str], dict[str, list[str]]]:
    """Table 1's layout: one column per task, one row per model, cells mean ± std ('–' where not run)."""
    tasks = list(table)
    models = dict.fromkeys(row["model"] for row in table.values())
    cells = {model: [f"{table[t]['mean']:.3f} ± {table[t]['std']:.3f}" if table[t]["model"] == model else "–"
                     for t in tasks] for model in models}
    return tasks, cells


def _write_index(report: Report) -> None:
    tasks, cells = table_rows(report.table)
    md = ["# actstore report", "", "## Model accuracy (mean ± std over seeds)", ""]
    page = ["<!doctype html><meta charset='utf-8'><title>actstore report</title>", "<h1>actstore report</h1>",
            "<h2>Model accuracy (mean ± std over seeds)</h2>"]
    if tasks:
        md += ["| model | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        md += [f"| {model} | " + " | ".join(row) + " |" for model, row in cells.items()] + [""]
        page.append("<table border=1><tr><th>model</th>" + "".join(f"<th>{html.escape(t)}</th>" for t in tasks) + "</tr>"
                    + "".join(f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                              for m, row in cells.items()) + "</table>")
    else:
        md += ["No model accuracies in the store (extract and rank, or actstore eval).", ""]
        page.append("<p>No model accuracies in the store (extract and rank, or actstore eval).</p>")
    for title, stem, caption in report.figures:
        md += [f"## {title}", "", f"![{title}]({stem}.png)", "", f"{caption} ([SVG]({stem}.svg))", ""]
        page += [f"<h2>{html.escape(title)}</h2>", f"<img src='{stem}.png' alt='{html.escape(title)}'>",
                 f"<p>{html.escape(caption)} (<a href='{stem}.svg'>SVG</a>)</p>"]
    if report.skipped:
        md += ["## Not in the store", ""] + [f"- {note}" for note in report.skipped] + [""]
        page += ["<h2>Not in the store</h2><ul>"] + [f"<li>{html.escape(n)}</li>" for n in report.skipped] + ["</ul>"]
    (report.out / "index.md").write_text("\n".join(md))
    (report.out / "index.html").write_text("\n".join(page) + "\n")
