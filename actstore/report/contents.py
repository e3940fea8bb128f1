"""What the report shows of a store: the figures its rankings and results make, titled, in the report's order."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import xarray as xr
from matplotlib.figure import Figure

from .. import analysis
from ..results import KINDS
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


#: where the rankings' figures (predictivity and neuron accuracy, Figures 2 and 8; the layers) come among the
#: paper's figures, and the note when a store holds no ranking: rankings are no kind of result (``results.KINDS``)
RANKINGS_FIGURE = 2
NO_RANKINGS = "distributions: run actstore rank for at least one task"


def figures(store: Store, skipped: list[str]) -> Iterator[Drawn]:
    """The report's figures, each titled, by section in the order of the paper's figures they reproduce: the
    rankings' (Figure 2) and one per kind of result that ``results.KINDS`` gives a section, drawn by its entry in
    ``DRAWERS`` (kinds of no figure last, in ``KINDS``' order); a section whose data the store lacks adds its note to
    ``skipped``."""
    ranked = task_order(store.ranked_tasks())
    sections: list[tuple[float, str, list[str], Callable[[], Iterator[Drawn]]]] = [
        (RANKINGS_FIGURE, NO_RANKINGS, ranked, partial(_distributions, store, ranked))
    ]
    for kind in KINDS.values():
        if kind.section is not None:
            names = store.results(kind.name)
            sections.append(
                (
                    min(kind.figures, default=math.inf),
                    f"{kind.section}: run {kind.made_by}",
                    names,
                    partial(_draw_results, store, kind.name, names),
                )
            )
    for _, note, present, draw in sorted(sections, key=lambda section: section[0]):
        if present:
            yield from draw()
        else:
            skipped.append(note)


def _draw_results(store: Store, kind: str, names: list[str]) -> Iterator[Drawn]:
    yield from DRAWERS[kind](store, {name: store.result(kind, name) for name in names})


def _titled(fig: Figure, title: str, stem: str, caption: str) -> Drawn:
    fig.suptitle(title)
    return Drawn(fig, title, stem, caption)


def _transfer(store: Store, results: dict[str, xr.Dataset]) -> Iterator[Drawn]:
    for name, ds in results.items():
        order = task_order(ds["data"].values.tolist())
        flagged = analysis.at_chance(store, order)
        flag = (
            (
                f" Tasks marked '{AT_CHANCE.strip()}': their own prompts are not better than chance (one-sided "
                f"binomial test, p ≥ 0.05), so ratios on their data divide by a guess."
            )
            if flagged
            else ""
        )
        for kind, variable, label, caption in (
            (
                "relative",
                "relative_mean",
                "accuracy relative to own prompts",
                "Accuracy of the row task's prompts on the column task's data over the column task's own prompts, "
                "per seed, averaged over seeds (Figures 1/6).",
            ),
            (
                "absolute",
                "accuracy_mean",
                "accuracy",
                "Mean accuracy over seeds of the row task's prompts on the column task's data.",
            ),
        ):
            matrix = ds[variable].sel(prompts=order, data=order)
            yield _titled(
                heatmap(
                    matrix, "data", "prompts", label, "{:.2f}", flagged=flagged, names=("data task", "prompts of task")
                ),
                f"Transferability ({kind}): {name}",
                f"transfer-{kind}-{_stem(name)}",
                caption + flag,
            )


def _distributions(store: Store, ranked: list[str]) -> Iterator[Drawn]:
    rows = analysis.distributions(store, ranked)
    yield _titled(
        predictivity_figure(rows),
        "Neuron predictivity and model accuracy",
        "predictivity-distribution",
        "Boxes: predictivity (Eq. 5) of every neuron, whiskers at 1.5 IQR; dots: the "
        f"{analysis.TOP_SHOWN} most predictive neurons of each task (the skill neurons, above the "
        "whiskers); bars: model accuracy, mean ± std over seeds; dotted: chance (Figure 2).",
    )
    yield _titled(
        accuracy_figure(rows),
        "Neuron accuracy",
        "neuron-accuracy-distribution",
        "Accuracy (Eq. 3) of every neuron at every prompt token and seed; 0.5 is chance (Figure 8).",
    )
    yield _titled(
        layer_figure(analysis.skill_layers(store, ranked, LAYER_PERCENT)),
        "Where the skill neurons are",
        "skill-neuron-layers",
        f"Share of each task's top {LAYER_PERCENT:g} % neurons (by predictivity, "
        "over all layers) in each layer; E = encoder, D = decoder (T5's decoder at the first decoding "
        "step).",
    )


def _correlation(store: Store, results: dict[str, xr.Dataset]) -> Iterator[Drawn]:
    for name, ds in results.items():
        zscored = ds.attrs["spec"]["normalize"] == "zscore"
        order = task_order(ds["task_a"].values.tolist())
        rho, p = (ds[v].sel(task_a=order, task_b=order) for v in ("rho_mean", "p_max"))
        what = "z-scored predictivities" if zscored else "predictivities"
        yield _titled(
            heatmap(
                rho,
                "task_b",
                "task_a",
                "Spearman's ρ, mean over layers",
                "{:.2f}",
                marks=p < 0.05,
                vmin=-1,
                vmax=1,
                cmap="RdBu_r",
                mask_diagonal=True,
                names=(f"task ({what})", f"task ({what})"),
            ),
            f"Task specificity{' of z-scored predictivities' if zscored else ''}: {name}",
            f"correlation-{_stem(name)}",
            f"Spearman rank correlation of the tasks' neuron {what} per layer, averaged over layers; "
            "* marks p < 0.05 in every layer; the diagonal (1 by definition) is left blank"
            + (
                ". Each neuron's predictivity is z-scored across the tasks first, which shifts ρ by about "
                f"−1/(tasks − 1) = {-1 / (len(order) - 1):.2f} (Figure 7)."
                if zscored
                else " (Figure 3)."
            ),
        )


def _suppression(store: Store, results: dict[str, xr.Dataset]) -> Iterator[Drawn]:
    own = {n: ds for n, ds in results.items() if ds.attrs["spec"]["task"] == ds.attrs["spec"]["neurons_from"]}
    cross = {n: ds for n, ds in results.items() if n not in own}
    for kind, group in (("suppression", own), ("cross-suppression", cross)):
        for (mode, scope), members in _by_setting(group).items():
            yield _titled(
                suppression_figure(members, own),
                f"{kind.capitalize()} ({mode}, {scope})",
                f"{kind}-{mode}-{scope}",
                "Accuracy against the share of neurons suppressed: skill neurons (solid, band: ± std over "
                "seeds) and as many random neurons per layer (dashed, band: ± std over draws); n = dev "
                "examples scored. All panels share one y-axis"
                + (
                    "; each panel suppresses the skill neurons of the task after 'neurons of' while "
                    "evaluating the task named first; dotted: the evaluated task's own skill neurons."
                    if kind == "cross-suppression"
                    else "."
                ),
            )


def _adversarial(store: Store, results: dict[str, xr.Dataset]) -> Iterator[Drawn]:
    ordered = sorted(results.values(), key=lambda ds: _position(ds.attrs["spec"]["task"]))
    yield _titled(
        adversarial_figure(ordered),
        "Adversarial predictivity",
        "adversarial-overlap",
        "Share of the clean task's top x % neurons that are also in the adversarial task's top x % "
        "(solid), against chance (dashed); ρ: Spearman's correlation of the two predictivity vectors.",
    )


#: what draws each kind of result that ``results.KINDS`` gives a section: its figures, from the store and the kind's
#: stored results by name
DRAWERS: dict[str, Callable[[Store, dict[str, xr.Dataset]], Iterator[Drawn]]] = {
    "transfer": _transfer,
    "correlation": _correlation,
    "suppression": _suppression,
    "adversarial": _adversarial,
}


def _by_setting(results: dict[str, xr.Dataset]) -> dict[tuple[str, str], list[xr.Dataset]]:
    """Suppression results grouped by (mode, scope), each group in task order (evaluated task, then neuron source)."""
    groups = defaultdict(list)
    for ds in sorted(
        results.values(),
        key=lambda ds: (_position(ds.attrs["spec"]["task"]), _position(ds.attrs["spec"]["neurons_from"])),
    ):
        groups[ds.attrs["spec"]["mode"], ds.attrs["spec"]["scope"]].append(ds)
    return dict(groups)
