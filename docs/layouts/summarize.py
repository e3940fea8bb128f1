"""The tables of docs/layouts/README.md, from the stores docs/layouts.sh made: python docs/layouts/summarize.py"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from actstore import open_store

HERE = Path(__file__).resolve().parent
LAYOUTS = ("pt", "peft")


def per_token(ranking) -> np.ndarray:
    """Mean over seeds, layers and neurons of each token's predictivity max(Acc, 1 - Acc) (Eq. 3)."""
    acc = ranking["accuracy"].values
    return np.maximum(acc, 1 - acc).mean(axis=(0, 1, 3))


def main() -> None:
    rows, tokens, suppression = [], [], {}
    for layout in LAYOUTS:
        store = open_store(Path("runs") / f"minilm-{layout}.zarr")
        tuning = store.result("tuning", "sst2")
        ranking = store.ranking("sst2")
        pred = ranking["predictivity"].values  # (layer, neuron)
        top = np.argsort(-pred, axis=None)[: max(1, pred.size // 100)]  # the top 1 %
        layers, neurons = np.unravel_index(top, pred.shape)
        best = ranking["best_token"].values[:, layers, neurons]  # (seed, top neuron)
        model_accuracy = json.loads((HERE / f"rank-{layout}.json").read_text())["model_accuracy"]
        rows.append(
            f"| {layout} | {', '.join(f'{a:.4f}' for a in model_accuracy)} "
            f"(best steps {', '.join(str(int(s)) for s in tuning['best_step'].values)}) | {pred.max():.4f} | "
            f"{np.percentile(pred, 99):.4f} | {pred.mean():.4f} | "
            f"{', '.join(str(int((layers == layer).sum())) for layer in range(pred.shape[0]))} | "
            f"{(best == 0).mean():.2f} (chance {1 / ranking.sizes['token']:.2f}) |"
        )
        by_token = per_token(ranking)
        tokens.append(
            f"| {layout} | {by_token[0]:.4f} | {by_token[1:].mean():.4f} | {by_token[1:].max():.4f} "
            f"(token {1 + int(by_token[1:].argmax())}) |"
        )
        for mode in ("zero", "mean", "noise"):
            result = json.loads((HERE / f"suppress-{mode}-{layout}.json").read_text())
            suppression[(layout, mode)] = {row["percent"]: row for row in result["rows"]}
    print(
        "| layout | dev accuracy per seed (the 800 ranked examples) | top predictivity | 99th pct. | mean | "
        "top 1 % per layer (0–5) | share of their best tokens at token 0 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print("\n| layout | mean Pred(N, p_0) | mean over tokens 1 … p−1 | highest of tokens 1 … p−1 |")
    print("| --- | --- | --- | --- |")
    print("\n".join(tokens))
    percents = sorted(next(iter(suppression.values())))
    print("\n| mode | layout | " + " | ".join(f"{p:g} %" for p in percents) + " |")
    print("| --- | --- |" + " --- |" * len(percents))
    for mode in ("zero", "mean", "noise"):
        for layout in LAYOUTS:
            cells = [
                f"{r['skill_mean']:.3f} / {r['random_mean']:.3f} ± {r['random_std']:.3f}"
                for r in (suppression[(layout, mode)][p] for p in percents)
            ]
            print(f"| {mode} | {layout} | " + " | ".join(cells) + " |")
    draw(suppression, percents)


def draw(suppression: dict, percents: list[float]) -> None:
    """suppression.png: accuracy against the share suppressed, skill vs random, a panel per mode, both layouts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, mode in zip(axes, ("zero", "mean", "noise")):
        for layout, color in zip(LAYOUTS, ("tab:blue", "tab:orange")):
            rows = [suppression[(layout, mode)][p] for p in percents]
            ax.plot(percents, [r["skill_mean"] for r in rows], "-o", color=color, label=f"{layout}: skill neurons")
            random = np.array([r["random_mean"] for r in rows])
            spread = np.array([r["random_std"] for r in rows])
            ax.plot(percents, random, "--", color=color, label=f"{layout}: random (mean ± std)")
            ax.fill_between(percents, random - spread, random + spread, color=color, alpha=0.15)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set(title=f"{mode} mode", xlabel="neurons suppressed per layer (%)")
    axes[0].set_ylabel("SST-2 dev accuracy (mean of 3 seeds)")
    axes[0].legend(fontsize=8)
    fig.suptitle("MiniLM on SST-2: suppressing skill vs random neurons, pt (the papers' layout) and peft")
    fig.tight_layout()
    fig.savefig(HERE / "suppression.png", dpi=120)


if __name__ == "__main__":
    main()
