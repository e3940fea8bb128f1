"""The report's figures, each drawn from numbers into a ``Figure`` of its own (no files, no store)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .. import analysis

SKILL, RANDOM, OWN, CHANCE = "tab:blue", "tab:orange", "tab:gray", "gray"
#: the flag on transfer-map tick labels of a task whose own prompts are at chance
AT_CHANCE = " (at chance)"


def heatmap(
    matrix: xr.DataArray,
    x: str,
    y: str,
    label: str,
    fmt: str,
    *,
    marks: xr.DataArray | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    mask_diagonal: bool = False,
    flagged: Sequence[str] = (),
    names: tuple[str, str] | None = None,
) -> Figure:
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
    masked = np.ma.getmaskarray(shown)
    for (i, j), value in np.ndenumerate(values):
        if masked[i, j]:
            continue
        # Normalize takes a scalar as well: matplotlib's abstract Norm declares arrays only
        r, g, b, _ = image.cmap(image.norm(value))  # type: ignore[arg-type]
        ax.text(
            j,
            i,
            fmt.format(value) + ("*" if starred[i, j] else ""),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black",
        )
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
            ax.bar(
                i,
                float(acc.mean()),
                width=0.7,
                color="tab:green",
                alpha=0.35,
                yerr=float(acc.std()) if acc.size > 1 else None,
                capsize=4,
                error_kw={"ecolor": "darkgreen"},
            )
        top = row["top_predictivity"]
        ax.plot(np.full(len(top), i + 0.25), top, linestyle="none", marker="o", markersize=3, color="tab:red")
        ax.annotate(f"{top[0]:.2f}", (i + 0.3, top[0]), fontsize=7, va="bottom")
    ax.bxp(
        [r["predictivity"] for r in rows],
        positions=positions,
        widths=0.35,
        showmeans=False,
        showfliers=False,
        patch_artist=True,
        boxprops={"facecolor": "tab:blue", "alpha": 0.8},
        medianprops={"color": "black"},
    )
    _chance_line(ax)
    ax.set_xticks(positions, [r["task"] for r in rows], rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("task")
    ax.set_ylabel("accuracy / predictivity")
    fig.legend(
        handles=[
            Patch(color="tab:green", alpha=0.35, label="model accuracy (mean ± std)"),
            Patch(color="tab:blue", alpha=0.8, label="neuron predictivity (all neurons)"),
            Line2D(
                [],
                [],
                color="tab:red",
                marker="o",
                markersize=3,
                linestyle="none",
                label=f"top {analysis.TOP_SHOWN} neurons",
            ),
            Line2D([], [], color=CHANCE, linestyle=":", label="chance"),
        ],
        loc="outside lower center",
        ncols=2,
        fontsize=8,
    )
    return fig


def accuracy_figure(rows: list[dict]) -> Figure:
    """Figure 8: the distribution of neuron accuracies per task around chance."""
    fig = Figure(figsize=(2.0 + 1.0 * len(rows), 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.bxp(
        [r["accuracy"] for r in rows],
        positions=range(len(rows)),
        widths=0.5,
        patch_artist=True,
        boxprops={"facecolor": "tab:purple", "alpha": 0.6},
        medianprops={"color": "black"},
    )
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
            ax.plot(
                reference["percent"], analysis.suppression_summary(reference)["skill_mean"], color=OWN, linestyle=":"
            )
            dotted = True
        n = f" (n = {spec['n_examples']})" if "n_examples" in spec else ""
        ax.set_title(
            f"{spec['task']}{n} · neurons of {spec['neurons_from']}" if cross else f"{spec['task']}{n}", fontsize=9
        )
        ax.set_xlabel("neurons suppressed (%)")
        ax.set_ylabel("accuracy")
    skill = "skill neurons of the task after 'neurons of'" if crossed else "skill neurons"
    lines = [
        Line2D([], [], color=SKILL, label=skill),
        Line2D([], [], color=RANDOM, linestyle="--", label="random neurons, as many per layer"),
    ]
    if dotted:
        lines.append(Line2D([], [], color=OWN, linestyle=":", label="the evaluated task's own skill neurons"))
    bands = [
        Patch(color=SKILL, alpha=0.15, label="± std over seeds"),
        Patch(color=RANDOM, alpha=0.15, label="± std over random draws"),
    ]
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
    fig.legend(
        handles=[
            Line2D([], [], color=SKILL, label="overlap of the top sets"),
            Line2D([], [], color=CHANCE, linestyle="--", label="chance"),
        ],
        loc="outside lower center",
        ncols=2,
        fontsize=8,
    )
    return fig
