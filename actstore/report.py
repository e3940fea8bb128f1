"""Every figure of the paper from what a store holds, as PNG and SVG, plus an index page (Markdown and HTML) and a
static HTML page per top skill neuron of each task.

Numbers come from ``actstore.analysis`` (and results stored by ``transfer``, ``correlate``, ``suppress``,
``compare-adversarial``); this module only draws. It uses matplotlib's ``Figure`` directly (Agg canvas, no
pyplot state), so it runs headless and in threads. A figure whose data the store lacks is skipped with a
note naming the command that makes it.

What a reviewer checks is built in: every figure has a title; tasks appear clean first, then the adversarial ones in
their clean tasks' order; panels of one figure share their y-axis; figures that summarise spreads say so in the legend.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from . import analysis
from .errors import ActstoreError
from .examples import top_examples
from .ranking import top_neurons
from .specs import RankingSpec
from .store import Store
from .tasks import _registry, source_task

FORMATS = ("png", "svg")
#: the top share of all neurons whose layers the layer figure shows
LAYER_PERCENT = 1.0
#: how many of each task's top skill neurons get a page of their own
NEURON_PAGES = 10
#: examples at each end (highest and lowest activation) on a neuron's page
EXAMPLES = 5
SKILL, RANDOM, OWN, CHANCE = "tab:blue", "tab:orange", "tab:gray", "gray"
#: the flag on transfer-map tick labels of a task whose own prompts are at chance
AT_CHANCE = " (at chance)"


@dataclass
class Report:
    """What ``render`` wrote: figures (title, file stem, caption), notes on skipped figures, Table 1 rows, and the
    neuron pages (per task: rows of ``ranking.top_neurons`` with the page's path relative to ``out``)."""

    out: Path
    figures: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    table: dict[str, dict] = field(default_factory=dict)
    neurons: dict[str, list[dict]] = field(default_factory=dict)

    def files(self) -> list[Path]:
        return [self.out / f"{stem}.{fmt}" for _, stem, _ in self.figures for fmt in FORMATS] + \
               [self.out / "index.md", self.out / "index.html"] + \
               [self.out / row["page"] for rows in self.neurons.values() for row in rows]


@dataclass
class Drawn:
    """One figure of the report, titled, with the file stem and caption it is written under."""

    figure: Figure
    title: str
    stem: str
    caption: str


def render(store: Store, out: str | Path, *, neuron_pages: int = NEURON_PAGES) -> Report:
    """Draw every figure the store has data for into ``out``, a page for each of the ``neuron_pages`` top neurons
    of every ranked task under ``out/neurons/``, and write index.md and index.html there."""
    report = Report(Path(out))
    report.table = analysis.accuracy_table(store, task_order(_accuracy_tasks(store, store.ranked_tasks())))
    try:
        report.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ActstoreError(f"cannot write the report to {report.out}: {exc.strerror or exc}") from None
    for drawn in figures(store, report.skipped):
        for fmt in FORMATS:  # nothing clipped at the edges
            drawn.figure.savefig(report.out / f"{drawn.stem}.{fmt}", dpi=150, bbox_inches="tight")
        report.figures.append((drawn.title, drawn.stem, drawn.caption))
    if neuron_pages > 0:
        report.neurons = write_neuron_pages(store, report.out, neuron_pages)
    _write_index(report)
    return report


def figures(store: Store, skipped: list[str]) -> Iterator[Drawn]:
    """The report's figures in order, each titled; a figure whose data is missing adds a note to ``skipped``."""
    ranked = task_order(store.ranked_tasks())

    def titled(fig: Figure, title: str, stem: str, caption: str) -> Drawn:
        fig.suptitle(title)
        return Drawn(fig, title, stem, caption)

    for name in _or_note(skipped, store.results("transfer"), "transferability: run actstore transfer --tasks A,B,..."):
        ds = store.result("transfer", name)
        order = task_order(ds["data"].values.tolist())
        flagged = analysis.at_chance(store, order)
        flag = (f" Tasks marked '{AT_CHANCE.strip()}': their own prompts are not better than chance (one-sided "
                f"binomial test, p ≥ 0.05), so ratios on their data divide by a guess.") if flagged else ""
        for kind, variable, label, caption in (
                ("relative", "relative_mean", "accuracy relative to own prompts",
                 "Accuracy of the row task's prompts on the column task's data over the column task's own prompts, "
                 "per seed, averaged over seeds (Figures 1/6)."),
                ("absolute", "accuracy_mean", "accuracy",
                 "Mean accuracy over seeds of the row task's prompts on the column task's data.")):
            matrix = ds[variable].sel(prompts=order, data=order)
            yield titled(heatmap(matrix, "data", "prompts", label, "{:.2f}", flagged=flagged,
                                 names=("data task", "prompts of task")),
                         f"Transferability ({kind}): {name}", f"transfer-{kind}-{_stem(name)}", caption + flag)
    if _or_note(skipped, ranked, "distributions: run actstore rank for at least one task"):
        rows = analysis.distributions(store, ranked)
        yield titled(predictivity_figure(rows), "Neuron predictivity and model accuracy", "predictivity-distribution",
                     "Boxes: predictivity (Eq. 5) of every neuron, whiskers at 1.5 IQR; dots: the "
                     f"{analysis.TOP_SHOWN} most predictive neurons of each task (the skill neurons, above the "
                     "whiskers); bars: model accuracy, mean ± std over seeds; dotted: chance (Figure 2).")
        yield titled(accuracy_figure(rows), "Neuron accuracy", "neuron-accuracy-distribution",
                     "Accuracy (Eq. 3) of every neuron at every prompt token and seed; 0.5 is chance (Figure 8).")
        yield titled(layer_figure(analysis.skill_layers(store, ranked, LAYER_PERCENT)), "Where the skill neurons are",
                     "skill-neuron-layers", f"Share of each task's top {LAYER_PERCENT:g} % neurons (by predictivity, "
                     "over all layers) in each layer; E = encoder, D = decoder (T5's decoder at the first decoding "
                     "step).")
    for name in _or_note(skipped, store.results("correlation"), "task specificity: run actstore correlate --tasks A,B"):
        ds = store.result("correlation", name)
        zscored = ds.attrs["spec"]["normalize"] == "zscore"
        order = task_order(ds["task_a"].values.tolist())
        rho, p = (ds[v].sel(task_a=order, task_b=order) for v in ("rho_mean", "p_max"))
        what = "z-scored predictivities" if zscored else "predictivities"
        yield titled(heatmap(rho, "task_b", "task_a", "Spearman's ρ, mean over layers", "{:.2f}", marks=p < 0.05,
                             vmin=-1, vmax=1, cmap="RdBu_r", mask_diagonal=True,
                             names=(f"task ({what})", f"task ({what})")),
                     f"Task specificity{' of z-scored predictivities' if zscored else ''}: {name}",
                     f"correlation-{_stem(name)}",
                     f"Spearman rank correlation of the tasks' neuron {what} per layer, averaged over layers; "
                     "* marks p < 0.05 in every layer; the diagonal (1 by definition) is left blank"
                     + (". Each neuron's predictivity is z-scored across the tasks first, which shifts ρ by about "
                        f"−1/(tasks − 1) = {-1 / (len(order) - 1):.2f} (Figure 7)." if zscored else " (Figure 3)."))
    curves = {name: store.result("suppression", name) for name in store.results("suppression")}
    own = {n: ds for n, ds in curves.items() if ds.attrs["spec"]["task"] == ds.attrs["spec"]["neurons_from"]}
    cross = {n: ds for n, ds in curves.items() if n not in own}
    for kind, group, command in (("suppression", own, "--task A"),
                                 ("cross-suppression", cross, "--task B --neurons-from A")):
        settings = _or_note(skipped, _by_setting(group), f"{kind}: run actstore suppress {command}")
        for (mode, scope), members in settings.items():
            yield titled(suppression_figure(members, own), f"{kind.capitalize()} ({mode}, {scope})",
                         f"{kind}-{mode}-{scope}",
                         "Accuracy against the share of neurons suppressed: skill neurons (solid, band: ± std over "
                         "seeds) and as many random neurons per layer (dashed, band: ± std over draws); n = dev "
                         "examples scored. All panels share one y-axis"
                         + ("; each panel suppresses the skill neurons of the task after 'neurons of' while evaluating "
                            "the task named first; dotted: the evaluated task's own skill neurons." if kind ==
                            "cross-suppression" else "."))
    names = _or_note(skipped, store.results("adversarial"),
                     "adversarial predictivity: run actstore compare-adversarial")
    if names:
        results = sorted((store.result("adversarial", n) for n in names),
                         key=lambda ds: _position(ds.attrs["spec"]["task"]))
        yield titled(adversarial_figure(results), "Adversarial predictivity", "adversarial-overlap",
                     "Share of the clean task's top x % neurons that are also in the adversarial task's top x % "
                     "(solid), against chance (dashed); ρ: Spearman's correlation of the two predictivity vectors.")


def _position(name: str) -> tuple:
    """Sort key of ``task_order``: adversarial after clean; then the registry's order of the clean task (the papers'
    grouping: sentiment, paraphrase, NLI, ethics; a user's own tasks after those), then the name."""
    registry = list(_registry())
    base = name.split(":")[0]  # a multi-class sub-task's ranking: <task>:<subtask>
    clean = source_task(base)
    return clean != base, registry.index(clean) if clean in registry else len(registry), clean, name


def task_order(names: Iterable[str]) -> list[str]:
    """Tasks as every figure and table shows them: the clean tasks first, then the adversarial ones in the order of
    their clean tasks, so that the pairs line up between the two blocks."""
    return sorted(dict.fromkeys(names), key=_position)


def _accuracy_tasks(store: Store, ranked: list[str]) -> list[str]:
    """Ranked tasks, then tasks evaluated with their own prompts only."""
    evaluated = [n.split("@")[0] for n in store.results("evaluation")
                 if n.split("@")[1] == source_task(n.split("@")[0])]
    return list(dict.fromkeys([*ranked, *evaluated]))


def _or_note(skipped: list[str], items, note: str):
    if not items:
        skipped.append(note)
    return items


def _by_setting(results: dict[str, xr.Dataset]) -> dict[tuple[str, str], list[xr.Dataset]]:
    """Suppression results grouped by (mode, scope), each group in task order (evaluated task, then neuron source)."""
    groups = defaultdict(list)
    for ds in sorted(results.values(), key=lambda ds: (_position(ds.attrs["spec"]["task"]),
                                                        _position(ds.attrs["spec"]["neurons_from"]))):
        groups[ds.attrs["spec"]["mode"], ds.attrs["spec"]["scope"]].append(ds)
    return dict(groups)


def _stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# ---- figures: each returns a Figure, so tests and notebooks can use them without writing files

def heatmap(matrix: xr.DataArray, x: str, y: str, label: str, fmt: str, *, marks: xr.DataArray | None = None,
            vmin: float | None = None, vmax: float | None = None, cmap: str = "viridis", mask_diagonal: bool = False,
            flagged: Sequence[str] = (), names: tuple[str, str] | None = None) -> Figure:
    """A labelled (y, x) matrix with its values written in the cells; ``mask_diagonal`` blanks cells that are 1 by
    definition (they would stretch the colour scale), ``flagged`` tasks get ``AT_CHANCE`` on their tick labels, and
    ``names`` are the x and y axis labels (default: the dimension names)."""
    matrix = matrix.transpose(y, x)
    n_rows, n_cols = matrix.shape
    fig = Figure(figsize=(2.4 + 0.9 * n_cols, 1.6 + 0.7 * n_rows), layout="constrained")
    ax = fig.add_subplot()
    values = matrix.values.astype(np.float64)
    hidden = np.eye(n_rows, n_cols, dtype=bool) if mask_diagonal else np.zeros(values.shape, bool)
    shown = np.ma.masked_where(hidden, values)
    image = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax)
    fig.colorbar(image, ax=ax, label=label, shrink=0.9)

    def ticks(dim: str) -> list[str]:
        return [f"{t}{AT_CHANCE}" if t in flagged else str(t) for t in matrix[dim].values.tolist()]

    ax.set_xticks(range(n_cols), ticks(x), rotation=45, ha="right")
    ax.set_yticks(range(n_rows), ticks(y))
    ax.set_xlabel(names[0] if names else x.replace("_", " "))
    ax.set_ylabel(names[1] if names else y.replace("_", " "))
    starred = np.zeros(values.shape, bool) if marks is None else marks.transpose(y, x).values
    for (i, j), value in np.ndenumerate(values):
        if shown.mask is not np.ma.nomask and shown.mask[i, j]:
            continue
        r, g, b, _ = image.cmap(image.norm(value))
        ax.text(j, i, fmt.format(value) + ("*" if starred[i, j] else ""), ha="center", va="center", fontsize=8,
                color="white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black")
    return fig


def _chance_line(ax: Axes, level: float = 0.5) -> None:
    ax.axhline(level, color=CHANCE, linestyle=":", linewidth=1)


def predictivity_figure(rows: list[dict]) -> Figure:
    """Figure 2: predictivity boxes over model-accuracy bars, one position per task, the top neurons as dots."""
    fig = Figure(figsize=(2.0 + 1.0 * len(rows), 4.2), layout="constrained")
    ax = fig.add_subplot()
    positions = np.arange(len(rows))
    for i, row in enumerate(rows):
        acc = row["model_accuracy"]
        if acc is not None:
            ax.bar(i, float(acc.mean()), width=0.7, color="tab:green", alpha=0.35,
                   yerr=float(acc.std()) if acc.size > 1 else None, capsize=4, error_kw={"ecolor": "darkgreen"})
        top = row["top_predictivity"]
        ax.plot(np.full(len(top), i + 0.25), top, linestyle="none", marker="o", markersize=3, color="tab:red")
        ax.annotate(f"{top[0]:.2f}", (i + 0.3, top[0]), fontsize=7, va="bottom")
    ax.bxp([r["predictivity"] for r in rows], positions=positions, widths=0.35, showmeans=False, showfliers=False,
           patch_artist=True, boxprops={"facecolor": "tab:blue", "alpha": 0.8}, medianprops={"color": "black"})
    _chance_line(ax)
    ax.set_xticks(positions, [r["task"] for r in rows], rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("task")
    ax.set_ylabel("accuracy / predictivity")
    fig.legend(handles=[Patch(color="tab:green", alpha=0.35, label="model accuracy (mean ± std)"),
                        Patch(color="tab:blue", alpha=0.8, label="neuron predictivity (all neurons)"),
                        Line2D([], [], color="tab:red", marker="o", markersize=3, linestyle="none",
                               label=f"top {analysis.TOP_SHOWN} neurons"),
                        Line2D([], [], color=CHANCE, linestyle=":", label="chance")],
               loc="outside lower center", ncols=2, fontsize=8)
    return fig


def accuracy_figure(rows: list[dict]) -> Figure:
    """Figure 8: the distribution of neuron accuracies per task around chance."""
    fig = Figure(figsize=(2.0 + 1.0 * len(rows), 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.bxp([r["accuracy"] for r in rows], positions=range(len(rows)), widths=0.5, patch_artist=True,
           boxprops={"facecolor": "tab:purple", "alpha": 0.6}, medianprops={"color": "black"})
    ax.axhline(0.5, color=CHANCE, linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(range(len(rows)), [r["task"] for r in rows], rotation=30, ha="right")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("task")
    ax.set_ylabel("neuron accuracy")
    fig.legend(loc="outside lower center", fontsize=8)
    return fig


def layer_figure(shares: xr.DataArray) -> Figure:
    """Per task, the share of its top neurons in each layer; layers labelled by stack (E0…, D0…)."""
    stacks = shares["layer_stack"].values.tolist()
    labels = [f"{stack[0].upper()}{i - stacks.index(stack)}" for i, stack in enumerate(stacks)]
    fig = Figure(figsize=(2.6 + 0.45 * len(labels), 3.8), layout="constrained")
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


def _grid(n: int, *, width: float = 3.2, height: float = 2.8) -> tuple[Figure, list[Axes]]:
    """n panels sharing one y-axis, in as few rows of at most 3 as fit them; only n axes exist (no empty panels)."""
    rows = -(-n // 3)
    cols = -(-n // rows)
    fig = Figure(figsize=(width * cols, height * rows + 0.9), layout="constrained")
    axes = [fig.add_subplot(rows, cols, 1)]
    axes += [fig.add_subplot(rows, cols, i + 1, sharey=axes[0]) for i in range(1, n)]
    return fig, axes


def _band(ax: Axes, x: np.ndarray, mean: xr.DataArray, std: xr.DataArray, color: str, style: str) -> None:
    ax.plot(x, mean, color=color, linestyle=style, marker="o", markersize=3)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)


def suppression_figure(results: list[xr.Dataset], own: dict[str, xr.Dataset]) -> Figure:
    """One panel per result: skill solid vs random dashed; for cross suppression the task's own skill curve dotted."""
    fig, axes = _grid(len(results))
    own_by_task = {_setting(ds): ds for ds in own.values()}
    dotted = crossed = False
    for ax, result in zip(axes, results):
        spec, curves = result.attrs["spec"], analysis.suppression_summary(result)
        x = result["percent"].values
        _band(ax, x, curves["skill_mean"], curves["skill_std"], SKILL, "-")
        _band(ax, x, curves["random_mean"], curves["random_std"], RANDOM, "--")
        cross = spec["neurons_from"] != spec["task"]
        crossed |= cross
        reference = own_by_task.get(_setting(result))
        if cross and reference is not None:
            ax.plot(reference["percent"], analysis.suppression_summary(reference)["skill_mean"], color=OWN,
                    linestyle=":")
            dotted = True
        n = f" (n = {spec['n_examples']})" if "n_examples" in spec else ""
        ax.set_title(f"{spec['task']}{n} · neurons of {spec['neurons_from']}" if cross else f"{spec['task']}{n}",
                     fontsize=9)
        ax.set_xlabel("neurons suppressed (%)")
        ax.set_ylabel("accuracy")
    skill = "skill neurons of the task after 'neurons of'" if crossed else "skill neurons"
    lines = [Line2D([], [], color=SKILL, label=skill),
             Line2D([], [], color=RANDOM, linestyle="--", label="random neurons, as many per layer")]
    if dotted:
        lines.append(Line2D([], [], color=OWN, linestyle=":", label="the evaluated task's own skill neurons"))
    bands = [Patch(color=SKILL, alpha=0.15, label="± std over seeds"),
             Patch(color=RANDOM, alpha=0.15, label="± std over random draws")]
    # a column of lines, one of bands
    fig.legend(handles=lines + bands, loc="outside lower center", ncols=2, fontsize=8)
    return fig


def _setting(result: xr.Dataset) -> tuple[str, str, str]:
    """(evaluated task, mode, scope) of a suppression result: a curve compares only with one of the same setting."""
    spec = result.attrs["spec"]
    return spec["task"], spec["mode"], spec["scope"]


def adversarial_figure(results: list[xr.Dataset]) -> Figure:
    """One panel per adversarial task: top-x % overlap with the clean task's skill neurons against chance, on a y-range
    that fits the largest value (overlaps are small: on 0–1 they would lie flat on the axis)."""
    fig, axes = _grid(len(results))
    top = max(float(max(r["overlap"].max(), r["chance"].max())) for r in results)
    for ax, result in zip(axes, results):
        spec = result.attrs["spec"]
        x = result["percent"].values
        ax.plot(x, result["overlap"], color=SKILL, marker="o", markersize=3)
        ax.plot(x, result["chance"], color=CHANCE, linestyle="--")
        ax.set_ylim(0, min(1.0, 1.15 * top) if top > 0 else 1.0)
        ax.set_title(f"{spec['task']} vs {spec['clean']} (ρ = {float(result['rho_mean']):.2f})", fontsize=10)
        ax.set_xlabel(f"top neurons ({'per layer' if spec['scope'] == 'layer' else 'overall'}, %)")
        ax.set_ylabel("share of clean top neurons")
    fig.legend(handles=[Line2D([], [], color=SKILL, label="overlap of the top sets"),
                        Line2D([], [], color=CHANCE, linestyle="--", label="chance")],
               loc="outside lower center", ncols=2, fontsize=8)
    return fig


# ---- a page per top skill neuron

@dataclass
class Activity:
    """One neuron's dev activity at its best token of each seed: the activations (None where the store kept only
    the above-baseline bits), whether each is above the train baseline (Eq. 3's test), the labels, the baselines."""

    seeds: list[int]
    label_names: list[str]
    labels: np.ndarray              # (example,)
    above: np.ndarray               # (seed, example) bool
    values: np.ndarray | None       # (seed, example)
    baseline: np.ndarray | None     # (seed,)

    def fraction_above(self) -> np.ndarray:
        """(seed, label): the share of each label's examples above the baseline."""
        return np.stack([[self.above[s, self.labels == c].mean() if (self.labels == c).any() else np.nan
                          for c in range(len(self.label_names))] for s in range(len(self.seeds))])


def activities(store: Store, task: str, ranking: xr.Dataset, rows: list[dict]) -> dict[tuple[int, int], Activity]:
    """The ``Activity`` of each (layer, neuron) of ``rows`` (``top_neurons`` rows of ``task``'s ranking), read once per
    layer from the ranked dev extraction; empty where the store has no such extraction (a ranking alone)."""
    spec = store.ranking_spec(task)
    found: dict[tuple[int, int], Activity] = {}
    by_layer = defaultdict(list)
    for row in rows:
        by_layer[row["layer"], row["stack"]].append(row["neuron"])
    seeds = ranking["seed"].values.tolist()
    for (layer, stack), neurons in by_layer.items():
        if spec is None or store.extraction_spec(spec.task, spec.split, stack) is None:
            continue
        ds = store.extraction(spec.task, spec.split, stack=stack)
        labels, kept_values = ds["label"].values, "acts" in ds
        where = {"seed": seeds, "layer": layer, "neuron": neurons}
        best = ranking["best_token"].sel(layer=layer, neuron=neurons).values  # (seed, k)
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
                activity = Activity(seeds, list(ds.attrs["label_names"]), labels, at_best > baseline[:, None], at_best,
                                    baseline)
            else:
                activity = Activity(seeds, list(ds.attrs["label_names"]), labels, at_best, None, None)
            found[layer, neuron] = activity
    return found


def token_figure(accuracy: xr.DataArray) -> Figure:
    """Predictivity per prompt token, max(Acc, 1 − Acc) (Eq. 4), per seed (thin, its maximum marked) and averaged
    over seeds (thick); dashed, the neuron's predictivity (Eq. 5): the mean of the seeds' maxima, which lies above
    the thick curve's peak wherever the seeds peak at different tokens."""
    per_token = np.maximum(accuracy, 1.0 - accuracy).transpose("seed", "token")
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
    fig.legend(handles=[Line2D([], [], color=SKILL, linewidth=2, label="mean over seeds"),
                        Line2D([], [], color=SKILL, alpha=0.35, label="one seed"),
                        Line2D([], [], color=SKILL, alpha=0.6, marker="^", linestyle="", label="a seed's best token"),
                        Line2D([], [], color=SKILL, linestyle="--",
                               label=f"{TOKEN_PREDICTIVITY_LABEL} {predictivity:.4f}"),
                        Line2D([], [], color=CHANCE, linestyle=":", label="chance")],
               loc="outside lower center", ncols=3, fontsize=8)
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
            bars = ax.bar(np.arange(len(activity.seeds)) + c * width, fractions[:, c], width, color=colors[c],
                          label=name)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(np.arange(len(activity.seeds)) + 0.4 - width / 2, [f"seed {s}" for s in activity.seeds])
        ax.set_ylim(0, 1.08)
        ax.set_xlabel("prompt (seed), at its best token")
        ax.set_ylabel("share above the baseline")
        fig.legend(loc="outside lower center", ncols=len(colors), fontsize=8)
        return fig
    fig, axes = _grid(len(activity.seeds), width=3.4, height=2.6)
    for s, (ax, seed) in enumerate(zip(axes, activity.seeds)):
        values = activity.values[s]
        bins = np.histogram_bin_edges(values, bins=30)
        for c, name in enumerate(activity.label_names):
            ax.hist(values[activity.labels == c], bins=bins, histtype="step", color=colors[c], linewidth=1.2,
                    label=f"{name}: {fractions[s, c]:.0%} above")
        ax.axvline(activity.baseline[s], color="black", linestyle="--", linewidth=1)
        ax.set_title(f"seed {seed}", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(4))  # tiny spreads have long tick labels
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel("activation at the best token")
        ax.set_ylabel("examples")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.legend(handles=[Line2D([], [], color="black", linestyle="--", label="train baseline (Eq. 2)")],
               loc="outside lower center", fontsize=8)
    return fig


def comparable(store: Store, rankings: dict[str, xr.Dataset], task: str) -> dict[str, xr.Dataset]:
    """The rankings whose neurons are ``task``'s neurons: made with the same model (name and revision), same shape."""
    model, shape = store.ranking_spec(task).model, rankings[task]["predictivity"].shape
    return {other: ranking for other, ranking in rankings.items()
            if (store.ranking_spec(other).model.name, store.ranking_spec(other).model.revision)
            == (model.name, model.revision)
            and ranking["predictivity"].shape == shape}


def rank_rows(rankings: dict[str, xr.Dataset], layer: int, neuron: int) -> list[dict]:
    """The neuron's place in each ranking (``comparable`` ones): 1-based global and in-layer rank, predictivity."""
    rows = []
    for task, ranking in rankings.items():
        rows.append({"task": task, "rank_global": int(ranking["rank_global"].values[layer, neuron]) + 1,
                     "of": int(ranking["rank_global"].size),
                     "rank_in_layer": int(ranking["rank_in_layer"].values[layer, neuron]) + 1,
                     "in_layer": int(ranking.sizes["neuron"]),
                     "predictivity": float(ranking["predictivity"].values[layer, neuron])})
    return rows


def write_neuron_pages(store: Store, out: Path, k: int = NEURON_PAGES) -> dict[str, list[dict]]:
    """For the top ``k`` neurons of every ranked task, ``out/neurons/<task>-L<layer>-N<neuron>.html`` with its figures
    beside it; returns per task the ``top_neurons`` rows with each page's path relative to ``out``."""
    ranked = task_order(store.ranked_tasks())
    rankings = {task: store.ranking(task) for task in ranked}
    if not rankings:
        return {}
    folder = out / "neurons"
    folder.mkdir(parents=True, exist_ok=True)
    pages = {}
    for task, ranking in rankings.items():
        rows = top_neurons(ranking, k)
        found = activities(store, task, ranking, rows)
        peers = comparable(store, rankings, task)
        for row in rows:
            layer, neuron = row["layer"], row["neuron"]
            stem = f"{_stem(task)}-L{layer}-N{neuron}"
            row["page"] = f"neurons/{stem}.html"
            name = f"{task}, layer {layer} ({row['stack']}), neuron {neuron}"
            fig = token_figure(ranking["accuracy"].sel(layer=layer, neuron=neuron))
            fig.suptitle(f"Predictivity per prompt token: {name}")
            fig.savefig(folder / f"{stem}-tokens.png", dpi=110, bbox_inches="tight")
            sections = [("Predictivity per prompt token", f"<img src='{stem}-tokens.png' alt='predictivity per token'>"
                         "<p>max(Acc, 1 − Acc) of Eq. 4 at every prompt token: thick the mean over seeds, thin each "
                         "seed with its best token marked; dashed, the neuron's predictivity (Eq. 5), "
                         f"{row['predictivity']:.4f} in the rank table: the mean over seeds of each seed's maximum, "
                         "at each seed's own best token.</p>")]
            activity = found.get((layer, neuron))
            if activity is not None:
                fig = activity_figure(activity)
                fig.suptitle(f"{'Activation' if activity.values is not None else 'Share above the baseline'} by "
                             f"label: {name}")
                fig.savefig(folder / f"{stem}-activity.png", dpi=110, bbox_inches="tight")
                what = ("histograms of its activations on the dev examples of each label, the train baseline dashed"
                        if activity.values is not None else
                        "the share of each label's dev examples above the train baseline (the store kept only the "
                        "above-baseline bits, not the activations)")
                sections.append(("Activation by label against the baseline",
                                 f"<img src='{stem}-activity.png' alt='activation by label'><p>At each seed's best "
                                 f"token: {html.escape(what)}.</p>"))
            else:
                sections.append(("Activation by label against the baseline",
                                 "<p>Not in the store: it holds this ranking but not the dev extraction it came from."
                                 "</p>"))
            sections.append(("Rank in each task", _rank_table(rank_rows(peers, layer, neuron), task)))
            if activity is not None:
                sections.append(_examples_section(store, store.ranking_spec(task), ranking, layer, neuron,
                                                  row["best_token"]))
            _write_page(folder / f"{stem}.html", f"Skill neuron: {name}",
                        f"Rank {row['rank']} of {ranking['rank_global'].size} in {task} by predictivity (Eq. 5) "
                        f"{row['predictivity']:.4f} (the mean over seeds of each seed's maximum); best token "
                        f"{row['best_token']}: the prompt token that is best for the most seeds (the rank table's).",
                        sections)
        pages[task] = rows
    return pages


def _examples_section(store: Store, spec: RankingSpec, ranking: xr.Dataset, layer: int, neuron: int,
                      most_seeds: int) -> tuple[str, str]:
    """The ``EXAMPLES`` examples at each end of the neuron (``examples.top_examples``) for the ranking's first seed at
    that seed's best token (named against ``most_seeds``, the best token of the most seeds), with their texts, labels
    and the prompted model's predictions."""
    seed = int(ranking["seed"].values[0])
    token = int(ranking["best_token"].sel(seed=seed, layer=layer, neuron=neuron))
    found = top_examples(store, spec.task, layer, neuron, token=token, seed=seed, k=EXAMPLES, split=spec.split)
    by_value = found.ranked_by == "activation"
    ends = (("Highest activations", "Lowest activations") if by_value else
            ("Examples its bit gets right", "Examples its bit gets wrong"))
    head = (f"<tr><th>{'activation' if by_value else 'above the baseline'}</th><th>label</th>"
            "<th>model's prediction</th><th>text</th></tr>")

    def table(rows: list[dict]) -> str:
        cells = [(f"{r['activation']:.4g}" if by_value else ("yes" if r["above"] else "no"), r["label"],
                  r["prediction"] or "–", r["text"] if r["text"] is not None else "(text not stored)") for r in rows]
        return "<table>" + head + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                                          for row in cells) + "</table>"

    baseline = f"; train baseline {found.baseline:.4g}" if found.baseline is not None else ""
    which = ("the best token of the most seeds too" if token == most_seeds else
             f"not the best token of the most seeds, {most_seeds}, that the rank table shows")
    body = (f"<p>Seed {seed} at its own best token {token} ({which}; {html.escape(spec.split)} split{baseline}).</p>"
            + "".join(f"<h3>{title}</h3>{table(rows)}" for title, rows in zip(ends, (found.top, found.bottom))))
    return f"Top and bottom examples (seed {seed})", body


def _rank_table(rows: list[dict], task: str) -> str:
    head = "<tr><th>task</th><th>rank overall</th><th>rank in its layer</th><th>predictivity</th></tr>"
    body = "".join(f"<tr{' class=this' if r['task'] == task else ''}><td>{html.escape(r['task'])}</td>"
                   f"<td>{r['rank_global']} of {r['of']}</td><td>{r['rank_in_layer']} of {r['in_layer']}</td>"
                   f"<td>{r['predictivity']:.4f}</td></tr>" for r in rows)
    return f"<table>{head}{body}</table><p>Every ranking of the store made with the same model; rank 1 is best.</p>"


STYLE = ("<style>body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em}img{max-width:100%}"
         "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}tr.this{font-weight:bold}</style>")


def _write_page(path: Path, title: str, lead: str, sections: list[tuple[str, str]]) -> None:
    """A static page: title, a link back to the index, a lead paragraph, then (heading, HTML body) sections."""
    parts = [f"<!doctype html><html lang='en'><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}",
             "<p><a href='../index.html'>← report index</a></p>", f"<h1>{html.escape(title)}</h1>",
             f"<p>{html.escape(lead)}</p>"]
    parts += [f"<h2>{html.escape(heading)}</h2>{body}" for heading, body in sections]
    path.write_text("\n".join(parts) + "\n</html>\n")


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
    page = [f"<!doctype html><html lang='en'><meta charset='utf-8'><title>actstore report</title>{STYLE}",
            "<h1>actstore report</h1>", "<h2>Model accuracy (mean ± std over seeds)</h2>"]
    if tasks:
        md += ["| model | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        md += [f"| {model} | " + " | ".join(row) + " |" for model, row in cells.items()] + [""]
        page.append("<table border=1><tr><th>model</th>" + "".join(f"<th>{html.escape(t)}</th>" for t in tasks)
                    + "</tr>"
                    + "".join(f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                              for m, row in cells.items()) + "</table>")
    else:
        md += ["No model accuracies in the store (extract and rank, or actstore eval).", ""]
        page.append("<p>No model accuracies in the store (extract and rank, or actstore eval).</p>")
    for title, stem, caption in report.figures:
        md += [f"## {title}", "", f"![{title}]({stem}.png)", "", f"{caption} ([SVG]({stem}.svg))", ""]
        page += [f"<h2>{html.escape(title)}</h2>", f"<img src='{stem}.png' alt='{html.escape(title)}'>",
                 f"<p>{html.escape(caption)} (<a href='{stem}.svg'>SVG</a>)</p>"]
    if report.neurons:
        md += ["## Top skill neurons", "", "A page per neuron: predictivity per token, activation by label against the "
               "baseline, its rank in each task, its top and bottom examples.", ""]
        page += ["<h2>Top skill neurons</h2>", "<p>A page per neuron: predictivity per token, activation by label "
                 "against the baseline, its rank in each task, its top and bottom examples.</p>"]
        for task, rows in report.neurons.items():
            md += [f"- **{task}**: " + ", ".join(
                f"[L{r['layer']} n{r['neuron']} ({r['predictivity']:.3f})]({r['page']})" for r in rows)]
            page.append(f"<p><b>{html.escape(task)}</b>: " + ", ".join(
                f"<a href='{html.escape(r['page'])}'>L{r['layer']} n{r['neuron']} ({r['predictivity']:.3f})</a>"
                for r in rows) + "</p>")
        md.append("")
    if report.skipped:
        md += ["## Not in the store", ""] + [f"- {note}" for note in report.skipped] + [""]
        page += ["<h2>Not in the store</h2><ul>"] + [f"<li>{html.escape(n)}</li>" for n in report.skipped] + ["</ul>"]
    (report.out / "index.md").write_text("\n".join(md))
    (report.out / "index.html").write_text("\n".join(page) + "\n</html>\n")
