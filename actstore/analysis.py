"""The paper's analyses of what a store holds (METHOD.md, "Experiments"): transferability, task specificity,
adversarial predictivity, distributions and the accuracy table.

Each reads small stored arrays (evaluations, rankings (layer, neuron), suppression curves); the results of
their own (transfer, correlation, adversarial) are written back under ``results/<kind>/<name>`` with task
names as string coordinates, so that ``store.result("correlation", ...).sel(task_a="sst2")`` works.
Figures are drawn from these numbers by ``actstore.report``; nothing here plots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr
from scipy import stats

from .errors import ActstoreError
from .masks import SCOPES, skill_mask
from .ranking import PREDICTIVITY_DECIMALS, model_accuracy
from .results import evaluation_name
from .specs import to_attrs
from .store import Store
from .tasks import get_task, source_task

NORMALIZE = ("none", "zscore")
#: percentages of top neurons compared by ``compare_adversarial`` (the paper's suppression range)
ADVERSARIAL_PERCENTS = (1.0, 3.0, 5.0, 10.0, 15.0)
#: how many of a task's highest predictivities ``distributions`` lists
TOP_SHOWN = 10


def distinct_tasks(tasks: Sequence[str], minimum: int = 2) -> list[str]:
    """The tasks in the order given, without repeats; a comparison needs at least ``minimum`` of them."""
    unique = list(dict.fromkeys(t.strip() for t in tasks if t.strip()))
    if len(unique) < minimum:
        raise ActstoreError(
            f"give at least {minimum} different tasks, got {len(unique)} ({', '.join(unique) or 'none'})"
        )
    return unique


# ---- transferability (Figures 1 and 6)


def _check_own_prompts(store: Store, tasks: Sequence[str]) -> None:
    for task in tasks:
        if store.prompt_spec(task) is None:
            source = source_task(task)
            hint = f" (an adversarial task uses the prompts of '{source}')" if source != task else ""
            raise ActstoreError(
                f"task '{task}' has no prompts of its own in {store.location}{hint}; "
                "transfer compares tasks that each have their own prompts"
            )


def transfer_pairs(
    store: Store, tasks: Sequence[str], *, fingerprints: Mapping[str, str] | None = None, all_pairs: bool = False
) -> list[tuple[str, str]]:
    """(data task, prompts task) pairs of the transfer matrix to evaluate: those without a stored evaluation,
    those evaluated on other examples than ``fingerprints[data task]`` (another --limit), or all of them."""
    tasks = distinct_tasks(tasks)
    _check_own_prompts(store, tasks)

    def stale(data: str, prompts: str) -> bool:
        stored = store.find_result("evaluation", evaluation_name(data, prompts))
        return stored is None or (
            fingerprints is not None and stored.attrs["spec"]["data_fingerprint"] != fingerprints[data]
        )

    return [(data, prompts) for data in tasks for prompts in tasks if all_pairs or stale(data, prompts)]


def transfer(store: Store, tasks: Sequence[str]) -> xr.Dataset:
    """Accuracy of task A's prompts on task B's data over B's own prompts' accuracy, per seed and averaged
    over seeds (the paper's transferability), and the absolute accuracies; from stored evaluations, stored
    as results/transfer/<tasks joined by ,> with dims (seed,) prompts, data.

    The ratio pairs seeds by value, so all prompts must share the seeds; the evaluations of one data task
    must have scored the same examples, and all the same model.
    """
    tasks = distinct_tasks(tasks)
    missing = transfer_pairs(store, tasks)
    if missing:
        pairs = ", ".join(f"{data} with the prompts of {prompts}" for data, prompts in missing)
        raise ActstoreError(f"no stored evaluation of {pairs}: run actstore transfer (it evaluates what is missing)")
    evals = {(a, b): store.result("evaluation", evaluation_name(b, a)) for a in tasks for b in tasks}
    _check_evaluations(evals)
    seeds = evals[tasks[0], tasks[0]]["seed"].values
    acc = np.array([[evals[a, b]["accuracy"].sel(seed=seeds).values for b in tasks] for a in tasks])
    acc = np.moveaxis(acc, -1, 0)  # (seed, prompts, data)
    own = np.diagonal(acc, axis1=1, axis2=2)  # (seed, data)
    if (own == 0).any():
        s, j = np.argwhere(own == 0)[0]
        raise ActstoreError(
            f"the own prompts of '{tasks[j]}' (seed {seeds[s]}) score 0 on it: the transfer ratio is undefined"
        )
    relative = acc / own[:, None, :]
    dims = ("seed", "prompts", "data")
    result = xr.Dataset(
        {
            "accuracy": (dims, acc),
            "relative": (dims, relative),
            "accuracy_mean": (dims[1:], acc.mean(axis=0)),
            "relative_mean": (dims[1:], relative.mean(axis=0)),
        },
        coords={"seed": seeds, "prompts": list(tasks), "data": list(tasks)},
    )
    first = evals[tasks[0], tasks[0]].attrs["spec"]
    spec = {
        "kind": "transfer",
        "tasks": tasks,
        "seeds": seeds.tolist(),
        "model": first["model"],
        "evaluations": {evaluation_name(b, a): ev.attrs["spec"]["data_fingerprint"] for (a, b), ev in evals.items()},
    }
    name = ",".join(tasks)
    store.put_result("transfer", name, spec, result)
    return store.result("transfer", name)


def _check_evaluations(evals: dict[tuple[str, str], xr.Dataset]) -> None:
    """Refuse to divide accuracies that were made with other seeds, models or examples."""
    (a0, b0), ref = next(iter(evals.items()))
    ref_spec = ref.attrs["spec"]
    for (a, b), ev in evals.items():
        spec = ev.attrs["spec"]
        if ev["seed"].values.tolist() != ref["seed"].values.tolist():
            raise ActstoreError(
                f"{evaluation_name(b, a)} has seeds {ev['seed'].values.tolist()} but "
                f"{evaluation_name(b0, a0)} {ref['seed'].values.tolist()}: transfer pairs seeds and "
                "needs the same ones"
            )
        if spec["model"]["revision"] != ref_spec["model"]["revision"]:
            raise ActstoreError(
                f"{evaluation_name(b, a)} was evaluated with {spec['model']['name']} and "
                f"{evaluation_name(b0, a0)} with {ref_spec['model']['name']}: transfer needs one model"
            )
        own = evals[b, b].attrs["spec"]
        if spec["data_fingerprint"] != own["data_fingerprint"]:
            raise ActstoreError(
                f"{evaluation_name(b, a)} ({spec['n_examples']} examples) and {evaluation_name(b, b)} "
                f"({own['n_examples']} examples) scored different data: run actstore transfer again "
                "with --recompute"
            )


# ---- task specificity (Figures 3 and 7)


def _predictivities(store: Store, tasks: Sequence[str]) -> tuple[np.ndarray, dict]:
    """(task, layer, neuron) predictivities of tasks ranked with one model, and that model's spec.

    Rounded as rank compares them (``PREDICTIVITY_DECIMALS``), so that equal ones tie in a rank correlation.
    """
    rankings = [store.ranking_reader(t) for t in tasks]  # a clear error if a task is unranked
    values = [np.round(r.predictivity.values, PREDICTIVITY_DECIMALS) for r in rankings]
    specs = [r.spec for r in rankings]
    for task, spec in zip(tasks[1:], specs[1:]):
        if spec.model.revision != specs[0].model.revision:
            raise ActstoreError(
                f"the rankings of '{tasks[0]}' ({specs[0].model.name}, {specs[0].model.revision}) and "
                f"'{task}' ({spec.model.name}, {spec.model.revision}) come from different models; "
                "compare tasks of one model"
            )
    return np.stack(values), to_attrs(specs[0].model)


def zscore_across_tasks(pred: np.ndarray) -> np.ndarray:
    """Standardise every neuron's predictivity over the tasks (axis 0): what is left is how much more or less
    predictive the neuron is for one task than for the others. A neuron equally predictive for all tasks (up to
    rounding: a spread below 1e-9, where dividing would blow rounding noise up to ±1) gets 0.
    """
    spread = pred.std(axis=0)
    return np.divide(pred - pred.mean(axis=0), spread, out=np.zeros_like(pred), where=spread > 1e-9)


def _spearman_layers(
    x: np.ndarray, y: np.ndarray, names: tuple[str, str], what: str = "predictivities"
) -> tuple[np.ndarray, np.ndarray]:
    """Per layer of two (layer, neuron) arrays: Spearman's rho and its two-sided p-value (ties: average ranks)."""
    for values, name in zip((x, y), names):
        flat = np.flatnonzero(np.ptp(values, axis=1) == 0)
        if flat.size:
            raise ActstoreError(
                f"the {what} of '{name}' are all equal in layer {flat[0]}: a rank correlation is undefined there"
            )
    rho, p = np.empty(len(x)), np.empty(len(x))
    for layer in range(len(x)):
        result = stats.spearmanr(x[layer], y[layer])
        rho[layer], p[layer] = result.statistic, result.pvalue
    if not (np.isfinite(rho).all() and np.isfinite(p).all()):
        raise ActstoreError(
            f"the rank correlation of '{names[0]}' and '{names[1]}' is undefined (non-finite predictivities)"
        )
    return rho, p


def correlate(store: Store, tasks: Sequence[str], normalize: str = "none") -> xr.Dataset:
    """Task specificity: Spearman's rho of two tasks' predictivity vectors per layer, averaged over layers,
    for every pair of ``tasks``; stored as results/correlation/<tasks joined by ,>[.zscore].

    p-values are per layer (scipy's t approximation); ``p_max`` is the largest over layers: every layer's
    correlation is significant at that level (layers are not independent, so no Fisher combination).

    ``normalize="zscore"`` first standardises each neuron's predictivity across the given tasks
    (``zscore_across_tasks``). Per-layer z-scoring within a task would not change a rank correlation; across
    tasks it removes what all tasks share (neurons predictive of everything), so rho then measures whether
    two tasks prefer the same neurons beyond that. It needs at least 3 tasks (with 2 every z-score is ±1), and
    the z-scores summing to 0 per neuron bias rho by about -1/(tasks-1).
    """
    if normalize not in NORMALIZE:
        raise ActstoreError(f"unknown normalisation '{normalize}'; use {' or '.join(NORMALIZE)}")
    tasks = distinct_tasks(tasks)
    if normalize == "zscore" and len(tasks) < 3:
        raise ActstoreError(
            "the z-score variant standardises each neuron across the tasks and needs at least 3 "
            "(with 2, every z-score is ±1)"
        )
    pred, model = _predictivities(store, tasks)
    if normalize == "zscore":
        pred = zscore_across_tasks(pred)
    n_tasks, n_layers, n_neurons = pred.shape
    rho, p = np.ones((n_tasks, n_tasks, n_layers)), np.zeros((n_tasks, n_tasks, n_layers))
    for i in range(n_tasks):
        for j in range(i + 1, n_tasks):
            rho[i, j], p[i, j] = rho[j, i], p[j, i] = _spearman_layers(
                pred[i], pred[j], (tasks[i], tasks[j]), "predictivities" if normalize == "none" else "z-scores"
            )
    dims = ("task_a", "task_b", "layer")
    result = xr.Dataset(
        {
            "rho": (dims, rho),
            "p": (dims, p),
            "rho_mean": (dims[:2], rho.mean(axis=2)),
            "p_max": (dims[:2], p.max(axis=2)),
        },
        coords={"task_a": list(tasks), "task_b": list(tasks), "layer": np.arange(n_layers)},
    )
    spec = {
        "kind": "correlation",
        "tasks": tasks,
        "normalize": normalize,
        "method": "spearman per layer, mean over layers",
        "model": model,
        "n_neurons": n_neurons,
    }
    name = ",".join(tasks) + ("" if normalize == "none" else f".{normalize}")
    store.put_result("correlation", name, spec, result)
    return store.result("correlation", name)


# ---- adversarial predictivity (requirement 5)


def compare_adversarial(
    store: Store,
    task: str,
    *,
    clean: str | None = None,
    percents: Sequence[float] = ADVERSARIAL_PERCENTS,
    scope: str = "layer",
) -> xr.Dataset:
    """Are the clean task's skill neurons among the most predictive on the adversarial data?

    For each percentage x, with the top x % chosen as suppression chooses them (per layer or global):
    ``overlap`` = share of the clean top neurons that are also in the adversarial top (``chance`` = x % for
    random sets); ``adv_predictivity_clean_top`` = mean adversarial predictivity of the clean top neurons, to
    compare with that of the adversarial top (``adv_predictivity_adv_top``) and of all neurons
    (``adv_predictivity_all``); ``clean_top_percentile`` = mean share of neurons (in the same layer, or
    overall) ranked below a clean top neuron on the adversarial data (0.5 by chance, 1 if all stay on top; ties
    ordered as the ranking orders them).
    Plus Spearman's rho of the two predictivity vectors per layer. Stored as results/adversarial/<task>@<clean>
    (suffixed ``.global`` for the global scope).
    """
    if scope not in SCOPES:
        raise ActstoreError(f"unknown scope '{scope}'; use {' or '.join(SCOPES)}")
    if not percents or any(not 0 < p <= 100 for p in percents):
        raise ActstoreError(f"percentages must lie in (0, 100], got {', '.join(map(str, percents)) or 'none'}")
    clean = clean or source_task(task)
    if clean == task:
        raise ActstoreError(f"task '{task}' has no clean source task in the registry: name one with --clean")
    adv_reader, clean_reader = store.ranking_reader(task), store.ranking_reader(clean)
    adv_rank, clean_rank = adv_reader.dataset, clean_reader.dataset
    baseline = adv_reader.spec.baseline_task
    if baseline != clean:
        raise ActstoreError(
            f"the ranking of '{task}' used the train baseline of '{baseline}', not of its clean task "
            f"'{clean}': rank it again with --baseline-from {clean}"
        )
    pred, model = _predictivities(store, [clean, task])
    adv_pred = pred[1]
    ranks = adv_rank["rank_in_layer" if scope == "layer" else "rank_global"].values
    pool = ranks.shape[1] if scope == "layer" else ranks.size
    rows = []
    for percent in percents:
        clean_top, adv_top = skill_mask(clean_rank, percent, scope), skill_mask(adv_rank, percent, scope)
        if not clean_top.any():
            raise ActstoreError(
                f"{percent} % of the neurons is not a single neuron ({scope} scope): choose a larger percentage"
            )
        rows.append(
            [
                (clean_top & adv_top).sum() / clean_top.sum(),
                clean_top.sum() / clean_top.size,
                adv_pred[clean_top].mean(),
                adv_pred[adv_top].mean(),
                np.mean((pool - 1 - ranks[clean_top]) / (pool - 1)),
                clean_top.sum(),
            ]
        )
    columns = (
        "overlap",
        "chance",
        "adv_predictivity_clean_top",
        "adv_predictivity_adv_top",
        "clean_top_percentile",
        "n_selected",
    )
    rho, p = _spearman_layers(pred[0], pred[1], (clean, task))
    table = np.array(rows).T
    result = xr.Dataset(
        {
            **{c: (("percent",), table[i]) for i, c in enumerate(columns)},
            "adv_predictivity_all": ((), adv_pred.mean()),
            "rho": (("layer",), rho),
            "p": (("layer",), p),
            "rho_mean": ((), rho.mean()),
        },
        coords={"percent": np.asarray(percents, dtype=np.float64), "layer": np.arange(len(rho))},
    )
    result["n_selected"] = result["n_selected"].astype(np.int64)
    spec = {
        "kind": "adversarial",
        "task": task,
        "clean": clean,
        "scope": scope,
        "model": model,
        "percents": [float(p) for p in percents],
    }
    name = f"{task}@{clean}" + ("" if scope == "layer" else f".{scope}")
    store.put_result("adversarial", name, spec, result)
    return store.result("adversarial", name)


# ---- distributions (Figures 2 and 8) and the accuracy table (Table 1)


def model_accuracies(store: Store, task: str) -> xr.DataArray | None:
    """Per seed: the prompted model's accuracy on the task, from the predictions of its ranked split, else from
    the stored evaluation with its own prompts; None if the store has neither."""
    spec = store.ranking_spec(task)
    if spec is not None and store.extraction_spec(task, spec.split) is not None:
        return xr.DataArray(
            model_accuracy(store, task, spec.split),
            coords={"seed": list(spec.seeds)},
            dims="seed",
            attrs={"model": spec.model.name},
        )
    evaluation = store.find_result("evaluation", evaluation_name(task, source_task(task)))
    if evaluation is None:
        return None
    return evaluation["accuracy"].assign_attrs(model=evaluation.attrs["spec"]["model"]["name"])


def accuracy_table(store: Store, tasks: Sequence[str]) -> dict[str, dict]:
    """Table 1: mean ± std (population, over seeds) of the model accuracy per task that has one, and its model."""
    rows = {}
    for task in tasks:
        acc = model_accuracies(store, task)
        if acc is None:
            continue
        if acc.size < 2:
            raise ActstoreError(
                f"the accuracy of '{task}' is reported as mean ± std over seeds, but it has "
                f"{acc.size} seed; use at least 2"
            )
        rows[task] = {
            "mean": float(acc.mean()),
            "std": float(acc.std()),
            "seeds": acc["seed"].values.tolist(),
            "model": acc.attrs["model"],
        }
    return rows


def at_chance(store: Store, tasks: Sequence[str], alpha: float = 0.05) -> list[str]:
    """The tasks whose own prompts are not better than chance on them: a one-sided binomial test of the correct
    answers of the stored own-prompt evaluation, pooled over seeds, against 1 / number of classes (2 for a task
    the registry does not know), p >= ``alpha``. A transfer ratio with such a task's data divides by a guess."""
    flagged = []
    for task in tasks:
        evaluation = store.find_result("evaluation", evaluation_name(task, source_task(task)))
        if evaluation is None:
            continue
        n = int(evaluation.attrs["spec"]["n_examples"])
        correct = round(float(evaluation["accuracy"].sum()) * n)
        try:
            classes = len(get_task(task).label_names)
        except ActstoreError:
            classes = 2
        if stats.binomtest(correct, n * evaluation.sizes["seed"], 1 / classes, alternative="greater").pvalue >= alpha:
            flagged.append(task)
    return flagged


def box_stats(values: np.ndarray, label: str) -> dict:
    """Box-plot statistics (matplotlib ``Axes.bxp`` keys): quartiles, median, mean, whiskers at the furthest
    value within 1.5 IQR; no fliers, which for millions of neurons would be thousands of dots."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]  # the tokens a decoder layer does not have
    q1, med, q3 = np.percentile(values, (25, 50, 75))
    iqr = q3 - q1
    return {
        "label": label,
        "q1": q1,
        "med": med,
        "q3": q3,
        "mean": values.mean(),
        "fliers": [],
        "whislo": values[values >= q1 - 1.5 * iqr].min(),
        "whishi": values[values <= q3 + 1.5 * iqr].max(),
    }


def distributions(store: Store, tasks: Sequence[str]) -> list[dict]:
    """Per ranked task: box statistics of neuron predictivities (Eq. 5) and neuron accuracies (Eq. 3, all seeds,
    layers, tokens), the ``TOP_SHOWN`` highest predictivities (best first: the skill neurons, which a box's
    whiskers would hide), and the model accuracy per seed (None if unknown). A ranking with decoder neurons gives a
    row per stack, labelled ``<task> (<stack>)``."""
    rows = []
    for task in tasks:
        ranking = store.ranking_reader(task).dataset
        stacks = list(dict.fromkeys(ranking["layer_stack"].values.tolist()))
        for stack in stacks:
            part = ranking.where(ranking["layer_stack"] == stack, drop=True)
            label = task if len(stacks) == 1 else f"{task} ({stack})"
            rows.append(
                {
                    "task": label,
                    "predictivity": box_stats(part["predictivity"].values, label),
                    "accuracy": box_stats(part["accuracy"].values, label),
                    "top_predictivity": np.sort(part["predictivity"].values, axis=None)[::-1][:TOP_SHOWN],
                    "model_accuracy": model_accuracies(store, task),
                }
            )
    return rows


def skill_layers(store: Store, tasks: Sequence[str], percent: float = 1.0) -> xr.DataArray:
    """(task, layer): the share of a task's global top ``percent`` % neurons in each layer, i.e. where its skill
    neurons live; the ``stack`` coordinate tells T5's decoder layers from the encoder's."""
    rows = []
    for task in tasks:
        ranking = store.ranking_reader(task).dataset
        mask = skill_mask(ranking, percent, "global")
        rows.append(
            xr.DataArray(
                mask.sum(axis=1) / max(int(mask.sum()), 1),
                dims=("layer",),
                coords={"layer": ranking["layer"].values, "layer_stack": ranking["layer_stack"]},
            )
        )
    return xr.concat(rows, dim=xr.DataArray(list(tasks), dims="task"), join="outer")


# ---- suppression curves (written by actstore.suppression)


def suppression_summary(result: xr.Dataset) -> xr.Dataset:
    """Curves of one suppression result: skill mean ± std over seeds; random mean ± std over draws of the
    seed-averaged accuracy (as ``actstore suppress`` reports it)."""
    skill, control = result["accuracy_skill"], result["accuracy_random"].mean("seed")
    summary = xr.Dataset(
        {
            "skill_mean": skill.mean("seed"),
            "skill_std": skill.std("seed"),
            "random_mean": control.mean("draw"),
            "random_std": control.std("draw"),
        }
    )
    summary.attrs = result.attrs
    return summary
