"""What the report shows of a store: the figures its rankings and results make, titled, in the report's order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import xarray as xr
from matplotlib.figure import Figure

from .. import analysis
from ..store import Store
from .draw import (
    AT_CHANCE,
    accuracy_figure,
    adversarial_figure,
    heatmap,
    layer_figure,
    predictivity_figure,
    suppression_figure,
)
from .order import _position, _stem, task_order

#: the top share of all neurons whose layers the layer figure shows
LAYER_PERCENT = 1.0


@dataclass
class Drawn:
    """One figure of the report, titled, with the file stem and caption it is written under."""

    figure: Figure
    title: str
    stem: str
    caption: str


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
