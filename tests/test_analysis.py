"""Transfer, task specificity, adversarial predictivity and distributions against small independent computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from matplotlib import cbook
from scipy import stats

from actstore import analysis
from actstore.errors import ActstoreError
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.ranking import rank, ranking_dataset
from actstore.results import evaluation_name
from actstore.specs import ModelSpec, RankingSpec, to_attrs
from actstore.store import Store
from helpers import invoke, one_error_line, run_toy

MODEL = ModelSpec(
    name="tiny",
    revision="r1",
    architecture="bert",
    scoring="mlm_head",
    n_layers=3,
    n_neurons=40,
    hidden=4,
    max_positions=64,
)


def put_ranking(
    store: Store,
    task: str,
    accuracy: np.ndarray,
    *,
    model: ModelSpec = MODEL,
    baseline: str | None = None,
    seeds: tuple[int, ...] = (0, 1),
) -> None:
    """A ranking made from given neuron accuracies (seed, layer, token, neuron)."""
    spec = RankingSpec(
        task=task,
        split="validation",
        baseline_task=baseline or task,
        model=model,
        prompt_checksum="sha256:" + "0" * 16,
        seeds=seeds,
        n_examples=10,
    )
    store.put_ranking(spec, ranking_dataset(accuracy, np.asarray(seeds)))


def put_evaluation(
    store: Store,
    data: str,
    prompts: str,
    accuracy: list[float],
    *,
    seeds: tuple[int, ...] = (0, 1),
    fingerprint: str | None = None,
    model: ModelSpec = MODEL,
) -> None:
    spec = {
        "kind": "evaluation",
        "task": data,
        "split": "validation",
        "prompts_from": prompts,
        "model": to_attrs(model),
        "prompt_checksum": "sha256:" + "0" * 16,
        "seeds": list(seeds),
        "n_examples": 10,
        "data_fingerprint": fingerprint or f"fp-{data}",
        "max_length": 16,
    }
    store.put_result(
        "evaluation",
        evaluation_name(data, prompts),
        spec,
        xr.Dataset({"accuracy": (("seed",), np.asarray(accuracy))}, coords={"seed": list(seeds)}),
    )


def put_prompts(store: Store, task: str, seeds: tuple[int, ...] = (0, 1), model: ModelSpec = MODEL) -> None:
    prompts = PromptSet.random(seeds, 2, model.hidden)
    store.put_prompts(task, prompts.vectors, prompts.spec(model))


def accuracies(seed: int, shape=(2, 3, 2, 40)) -> np.ndarray:
    """Neuron accuracies on a grid of 1/10 steps, as 10 dev examples give: ties are plentiful."""
    return np.random.default_rng(seed).integers(0, 11, shape) / 10


# ---- transferability

#: (prompts, data): accuracy per seed
ACC = {("a", "a"): [0.8, 1.0], ("a", "b"): [0.6, 0.5], ("b", "a"): [0.4, 0.9], ("b", "b"): [0.5, 0.75]}


@pytest.fixture
def transfer_store(tmp_path) -> Store:
    store = Store(tmp_path / "t.zarr", mode="a")
    for task in ("a", "b"):
        put_prompts(store, task)
    for (prompts, data), acc in ACC.items():
        put_evaluation(store, data, prompts, acc)
    return store


def test_transfer_ratios_equal_hand_computed_ones(transfer_store):
    result = analysis.transfer(transfer_store, ["a", "b"])
    # prompts a on data b: seed 0: 0.6 / 0.5, seed 1: 0.5 / 0.75
    assert result["relative_mean"].sel(prompts="a", data="b") == pytest.approx((0.6 / 0.5 + 0.5 / 0.75) / 2)
    assert result["relative_mean"].sel(prompts="b", data="a") == pytest.approx((0.4 / 0.8 + 0.9 / 1.0) / 2)
    np.testing.assert_allclose(np.diag(result["relative_mean"].values), 1.0)
    assert result["accuracy_mean"].sel(prompts="b", data="a") == pytest.approx(0.65)
    assert result["relative"].sel(seed=1, prompts="a", data="b") == pytest.approx(0.5 / 0.75)
    stored = transfer_store.result("transfer", "a,b")
    xr.testing.assert_identical(stored.drop_attrs(), result.drop_attrs())
    assert stored.attrs["spec"]["evaluations"] == {"a@a": "fp-a", "b@a": "fp-b", "a@b": "fp-a", "b@b": "fp-b"}


def test_transfer_refuses_what_it_cannot_divide(transfer_store):
    put_prompts(transfer_store, "c")
    with pytest.raises(ActstoreError, match="no stored evaluation of a with the prompts of c, c with the prompts of a"):
        analysis.transfer(transfer_store, ["a", "c"])
    assert analysis.transfer_pairs(transfer_store, ["a", "c"]) == [("a", "c"), ("c", "a"), ("c", "c")]
    assert len(analysis.transfer_pairs(transfer_store, ["a", "b"], all_pairs=True)) == 4
    with pytest.raises(ActstoreError, match="at least 2 different tasks"):
        analysis.transfer(transfer_store, ["a", "a"])
    with pytest.raises(ActstoreError, match=r"'adv_sst2' has no prompts of its own .* prompts of 'sst2'"):
        analysis.transfer(transfer_store, ["a", "adv_sst2"])
    put_evaluation(transfer_store, "b", "a", [0.6, 0.5], fingerprint="fp-other")
    with pytest.raises(ActstoreError, match=r"b@a .* and b@b .* scored different data: .* --recompute"):
        analysis.transfer(transfer_store, ["a", "b"])
    put_evaluation(transfer_store, "b", "a", [0.6, 0.5, 0.7], seeds=(0, 1, 2))
    with pytest.raises(ActstoreError, match="b@a has seeds \\[0, 1, 2\\] but a@a \\[0, 1\\]"):
        analysis.transfer(transfer_store, ["a", "b"])
    other = ModelSpec(**{**to_attrs(MODEL), "name": "other", "revision": "r2"})
    put_evaluation(transfer_store, "b", "a", [0.6, 0.5], model=other)
    with pytest.raises(ActstoreError, match=r"evaluated with other .* transfer needs one model"):
        analysis.transfer(transfer_store, ["a", "b"])
    put_evaluation(transfer_store, "b", "a", [0.6, 0.5])
    put_evaluation(transfer_store, "b", "b", [0.0, 0.75])
    with pytest.raises(ActstoreError, match="own prompts of 'b' \\(seed 0\\) score 0"):
        analysis.transfer(transfer_store, ["a", "b"])


# ---- task specificity


def spearman_by_hand(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson of average ranks, and the two-sided p of its t statistic with n - 2 degrees of freedom."""
    r = np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1]
    n = len(x)
    t = r * np.sqrt((n - 2) / (1 - r * r))
    return r, 2 * stats.t.sf(abs(t), n - 2)


@pytest.fixture
def ranked_store(tmp_path) -> Store:
    store = Store(tmp_path / "r.zarr", mode="a")
    for i, task in enumerate(("sst2", "imdb", "qnli")):
        put_ranking(store, task, accuracies(i, (2, 3, 2, 40)))
    return store


def predictivity(store: Store, task: str) -> np.ndarray:
    """Equal predictivities must tie: round off the last-bit noise of their float means."""
    return np.round(store.ranking(task)["predictivity"].values, 12)


def test_correlation_equals_an_independent_computation(ranked_store):
    result = analysis.correlate(ranked_store, ["sst2", "imdb", "qnli"])
    pred = {t: predictivity(ranked_store, t) for t in ("sst2", "imdb", "qnli")}
    for a, b in (("sst2", "imdb"), ("imdb", "qnli"), ("qnli", "sst2")):
        expected = np.array([spearman_by_hand(pred[a][layer], pred[b][layer]) for layer in range(3)])
        np.testing.assert_allclose(result["rho"].sel(task_a=a, task_b=b).values, expected[:, 0], rtol=1e-10)
        np.testing.assert_allclose(result["p"].sel(task_a=b, task_b=a).values, expected[:, 1], rtol=1e-8)
        assert result["rho_mean"].sel(task_a=a, task_b=b) == pytest.approx(expected[:, 0].mean())
        assert result["p_max"].sel(task_a=a, task_b=b) == pytest.approx(expected[:, 1].max())
    assert (result["rho"].sel(task_a="imdb", task_b="imdb") == 1).all()
    assert ranked_store.result("correlation", "sst2,imdb,qnli").attrs["spec"]["normalize"] == "none"


def test_zscore_variant_standardises_each_neuron_across_tasks(ranked_store):
    tasks = ["sst2", "imdb", "qnli"]
    result = analysis.correlate(ranked_store, tasks, "zscore")
    pred = np.stack([predictivity(ranked_store, t) for t in tasks])
    z = np.zeros_like(pred)
    for layer, neuron in np.ndindex(pred.shape[1:]):
        v = pred[:, layer, neuron]
        if np.ptp(v) > 0:
            z[:, layer, neuron] = (v - v.mean()) / v.std()
    expected = np.mean([stats.spearmanr(z[0, layer], z[2, layer]).statistic for layer in range(3)])
    assert result["rho_mean"].sel(task_a="sst2", task_b="qnli") == pytest.approx(expected)
    raw = ranked_store.find_result("correlation", "sst2,imdb,qnli")
    assert raw is None or not np.allclose(raw["rho_mean"], result["rho_mean"])
    assert ranked_store.results("correlation") == ["sst2,imdb,qnli.zscore"]


def test_spearman_ignores_per_layer_zscoring_within_a_task(ranked_store):
    """Why the z-score variant works across tasks: within a task it would change nothing."""
    pred = ranked_store.ranking("sst2")["predictivity"].values
    zs = (pred - pred.mean(1, keepdims=True)) / pred.std(1, keepdims=True)
    other = ranked_store.ranking("imdb")["predictivity"].values
    assert stats.spearmanr(pred[1], other[1]).statistic == pytest.approx(stats.spearmanr(zs[1], other[1]).statistic)


def test_correlation_bad_input(ranked_store):
    with pytest.raises(ActstoreError, match=r"task 'rte' has no ranking .* actstore rank --task rte"):
        analysis.correlate(ranked_store, ["sst2", "rte"])
    with pytest.raises(ActstoreError, match="at least 2 different tasks, got 1"):
        analysis.correlate(ranked_store, ["sst2"])
    with pytest.raises(ActstoreError, match=r"z-score variant .* needs at least 3"):
        analysis.correlate(ranked_store, ["sst2", "imdb"], "zscore")
    with pytest.raises(ActstoreError, match="unknown normalisation 'l2'"):
        analysis.correlate(ranked_store, ["sst2", "imdb"], "l2")
    other = ModelSpec(**{**to_attrs(MODEL), "name": "mpnet", "revision": "r2"})
    put_ranking(ranked_store, "mrpc", accuracies(7), model=other)
    with pytest.raises(ActstoreError, match=r"'sst2' \(tiny, r1\) and 'mrpc' \(mpnet, r2\) come from different models"):
        analysis.correlate(ranked_store, ["sst2", "mrpc"])
    flat = accuracies(8)
    flat[:, 2] = 0.7  # every neuron of layer 2 equally predictive
    put_ranking(ranked_store, "flat", flat)
    with pytest.raises(ActstoreError, match="predictivities of 'flat' are all equal in layer 2"):
        analysis.correlate(ranked_store, ["sst2", "flat"])
    for task in ("same1", "same2"):
        put_ranking(ranked_store, task, flat)
    np.testing.assert_array_equal(analysis.zscore_across_tasks(np.stack([flat, flat, flat])), 0)  # no rounding noise
    with pytest.raises(ActstoreError, match="z-scores of 'same1' are all equal in layer 0"):  # 0 for every neuron
        analysis.correlate(ranked_store, ["same1", "same2", "flat"], "zscore")
    assert ranked_store.results("correlation") == []


# ---- adversarial predictivity


def test_compare_adversarial_overlap_by_hand(tmp_path):
    store = Store(tmp_path / "a.zarr", mode="a")
    clean, adv = accuracies(1), accuracies(2)
    put_ranking(store, "sst2", clean)
    put_ranking(store, "adv_sst2", adv, baseline="sst2")
    result = analysis.compare_adversarial(store, "adv_sst2", percents=[10.0, 50.0])
    pc, pa = store.ranking("sst2")["predictivity"].values, store.ranking("adv_sst2")["predictivity"].values
    for percent, k in ((10.0, 4), (50.0, 20)):  # of 40 neurons per layer
        top_c = np.zeros_like(pc, bool)
        top_a = np.zeros_like(pa, bool)
        for layer in range(3):
            # the ranking rule: predictivity on 12 decimals, ties by neuron index
            top_c[layer, np.argsort(-np.round(pc[layer], 12), kind="stable")[:k]] = True
            top_a[layer, np.argsort(-np.round(pa[layer], 12), kind="stable")[:k]] = True
        row = result.sel(percent=percent)
        assert row["overlap"] == pytest.approx((top_c & top_a).sum() / (3 * k))
        assert row["chance"] == pytest.approx(k / 40) and int(row["n_selected"]) == 3 * k
        assert row["adv_predictivity_clean_top"] == pytest.approx(pa[top_c].mean())
        assert row["adv_predictivity_adv_top"] == pytest.approx(pa[top_a].mean())
        below = [(pa[layer] < pa[layer, n]).sum() for layer, n in zip(*np.nonzero(top_c))]
        ties = [(pa[layer] == pa[layer, n]).sum() - 1 for layer, n in zip(*np.nonzero(top_c))]
        assert np.mean(below) / 39 <= row["clean_top_percentile"] <= (np.mean(below) + np.mean(ties)) / 39
    assert float(result["adv_predictivity_all"]) == pytest.approx(pa.mean())
    pc, pa = predictivity(store, "sst2"), predictivity(store, "adv_sst2")
    rho = [stats.spearmanr(pc[i], pa[i]).statistic for i in range(3)]
    assert float(result["rho_mean"]) == pytest.approx(np.mean(rho))
    assert store.results("adversarial") == ["adv_sst2@sst2"]


def test_adversarial_neurons_that_stay_on_top(tmp_path):
    store = Store(tmp_path / "a.zarr", mode="a")
    put_ranking(store, "sst2", accuracies(1))
    put_ranking(store, "adv_sst2", accuracies(1), baseline="sst2")  # the same neurons stay predictive
    result = analysis.compare_adversarial(store, "adv_sst2", percents=[5.0], scope="global")
    assert float(result["rho_mean"]) == pytest.approx(1.0) and float(result["overlap"][0]) == 1.0
    assert float(result["clean_top_percentile"][0]) > 0.95 > float(result["chance"][0])
    assert store.results("adversarial") == ["adv_sst2@sst2.global"]


def test_adversarial_bad_input(tmp_path):
    store = Store(tmp_path / "a.zarr", mode="a")
    put_ranking(store, "sst2", accuracies(1))
    with pytest.raises(ActstoreError, match="'sst2' has no clean source task"):
        analysis.compare_adversarial(store, "sst2")
    with pytest.raises(ActstoreError, match="task 'adv_sst2' has no ranking"):
        analysis.compare_adversarial(store, "adv_sst2")
    put_ranking(store, "adv_sst2", accuracies(2))
    with pytest.raises(ActstoreError, match="used the train baseline of 'adv_sst2', not of its clean task 'sst2'"):
        analysis.compare_adversarial(store, "adv_sst2")
    put_ranking(store, "adv_sst2", accuracies(2), baseline="sst2")
    with pytest.raises(ActstoreError, match="is not a single neuron"):
        analysis.compare_adversarial(store, "adv_sst2", percents=[1.0])
    with pytest.raises(ActstoreError, match="unknown scope 'model'"):
        analysis.compare_adversarial(store, "adv_sst2", scope="model")
    with pytest.raises(ActstoreError, match="percentages must lie in"):
        analysis.compare_adversarial(store, "adv_sst2", percents=[120.0])


# ---- distributions, Table 1, suppression curves


def test_box_stats_agree_with_matplotlib():
    values = np.random.default_rng(0).normal(size=501) ** 3
    ours = analysis.box_stats(values, "x")
    theirs = cbook.boxplot_stats(values, whis=1.5)[0]
    for key in ("q1", "med", "q3", "mean", "whislo", "whishi"):
        assert ours[key] == pytest.approx(theirs[key]), key


def test_accuracy_table_from_evaluations(tmp_path):
    store = Store(tmp_path / "e.zarr", mode="a")
    put_evaluation(store, "sst2", "sst2", [0.8, 0.9, 1.0], seeds=(0, 1, 2))
    put_evaluation(store, "adv_sst2", "sst2", [0.5, 0.7], seeds=(0, 1))
    put_evaluation(store, "qnli", "sst2", [0.5, 0.7])  # not qnli's own prompts: not its accuracy
    table = analysis.accuracy_table(store, ["sst2", "adv_sst2", "qnli"])
    assert list(table) == ["sst2", "adv_sst2"]
    assert table["sst2"]["mean"] == pytest.approx(0.9)
    assert table["sst2"]["std"] == pytest.approx(np.std([0.8, 0.9, 1.0]))
    assert table["adv_sst2"]["std"] == pytest.approx(0.1) and table["sst2"]["model"] == "tiny"
    put_evaluation(store, "qnli", "qnli", [0.6], seeds=(3,))
    with pytest.raises(ActstoreError, match="'qnli' is reported as mean ± std over seeds, but it has 1 seed"):
        analysis.accuracy_table(store, ["qnli"])


def test_suppression_summary_by_hand():
    skill = np.array([[0.9, 0.6], [0.7, 0.4]])  # (seed, percent)
    control = np.array([[[0.9, 0.8], [0.7, 0.8]], [[0.9, 0.9], [0.7, 0.7]]])  # (draw, seed, percent)
    ds = xr.Dataset(
        {"accuracy_skill": (("seed", "percent"), skill), "accuracy_random": (("draw", "seed", "percent"), control)},
        coords={"seed": [0, 1], "percent": [0.0, 5.0], "draw": [0, 1]},
    )
    summary = analysis.suppression_summary(ds)
    np.testing.assert_allclose(summary["skill_mean"], [0.8, 0.5])
    np.testing.assert_allclose(summary["skill_std"], [0.1, 0.1])
    np.testing.assert_allclose(summary["random_mean"], [0.8, 0.8])  # draw means 0.8/0.8 and 0.8/0.8
    np.testing.assert_allclose(summary["random_std"], [0.0, 0.0], atol=1e-12)


# ---- the commands, end to end on a tiny random RoBERTa and real SST-2 / QNLI


@pytest.fixture(scope="module")
def tiny_store(tiny_model_dir, data_dir, tmp_path_factory):
    """Toy extraction + ranking, and random prompts for sst2 and qnli, all for one tiny RoBERTa."""
    path = tmp_path_factory.mktemp("analysis") / "s.zarr"
    store = run_toy(path, tiny_model_dir("roberta"), data_dir, n_train=8, n_dev=8, seeds=(0, 1), n_tokens=2)
    rank(store, "toy", baseline_from="toy")
    spec = load_model(str(tiny_model_dir("roberta"))).spec
    for task in ("sst2", "qnli"):
        prompts = PromptSet.random((0, 1), 2, spec.hidden)
        store.put_prompts(task, prompts.vectors, prompts.spec(spec))
    return path


def test_transfer_command_evaluates_missing_pairs_once(tiny_store, tiny_model_dir, data_dir):
    args = (
        "transfer",
        "--store",
        tiny_store,
        "--tasks",
        "sst2,qnli",
        "--model",
        tiny_model_dir("roberta"),
        "--data-dir",
        data_dir,
        "--limit",
        "6",
        "--batch-size",
        "6",
    )
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "4 pair(s) evaluated" in result.output and "transferability" in result.output
    store = Store(tiny_store)
    acc = {
        (a, b): store.result("evaluation", f"{b}@{a}")["accuracy"].values
        for a in ("sst2", "qnli")
        for b in ("sst2", "qnli")
    }
    assert all(store.result("evaluation", f"{b}@{a}").attrs["spec"]["n_examples"] == 6 for a, b in acc)
    payload = json.loads(invoke(*args, "--json").output)
    assert payload["evaluated"] == 0
    assert json.loads(invoke(*args[:-4], "--limit", "5", "--json").output)["evaluated"] == 4  # other examples
    assert store.result("evaluation", "qnli@sst2").attrs["spec"]["n_examples"] == 5
    payload = json.loads(invoke(*args, "--json").output)
    assert payload["evaluated"] == 4
    expected = np.mean(acc["qnli", "sst2"] / acc["sst2", "sst2"])
    assert payload["relative"][1][0] == pytest.approx(expected)
    assert payload["accuracy"][0][1] == pytest.approx(acc["sst2", "qnli"].mean())


def test_correlate_and_compare_commands(tiny_store):
    store = Store(tiny_store, mode="a")
    toy = store.ranking("toy")
    put_ranking(
        store, "toy2", np.asarray(toy["accuracy"].values)[..., ::-1].copy(), model=store.ranking_spec("toy").model
    )
    result = invoke("correlate", "--store", tiny_store, "--tasks", "toy,toy2", "--json")
    assert result.exit_code == 0, result.output
    rho = json.loads(result.output)["rho_mean"][0][1]
    pa, pb = predictivity(store, "toy"), predictivity(store, "toy2")
    assert rho == pytest.approx(np.mean([spearman_by_hand(pa[i], pb[i])[0] for i in range(len(pa))]))
    table = invoke("correlate", "--store", tiny_store, "--tasks", "toy,toy2")
    assert "Spearman's rho, mean over" in table.output and "largest p-value" in table.output


def test_analysis_commands_bad_input(tiny_store, tmp_path):
    one_error_line(invoke("correlate", "--store", tiny_store, "--tasks", "toy"), "at least 2 different tasks")
    one_error_line(
        invoke("correlate", "--store", tiny_store, "--tasks", "toy,toy3", "--normalize", "zscore"), "needs at least 3"
    )
    one_error_line(invoke("correlate", "--store", tiny_store, "--tasks", "toy,sst2"), "task 'sst2' has no ranking")
    one_error_line(
        invoke("transfer", "--store", tiny_store, "--tasks", "sst2,adv_qnli"), "'adv_qnli' has no prompts of its own"
    )
    one_error_line(
        invoke("compare-adversarial", "--store", tiny_store, "--task", "adv_sst2"), "task 'adv_sst2' has no ranking"
    )
    one_error_line(invoke("correlate", "--store", tmp_path / "typo.zarr", "--tasks", "a,b"), "no actstore store")
    assert not (tmp_path / "typo.zarr").exists()
    store = Store(tmp_path / "m.zarr", mode="a")
    put_ranking(store, "a", accuracies(1))
    put_ranking(store, "b", accuracies(2), model=ModelSpec(**{**to_attrs(MODEL), "revision": "r9"}))
    one_error_line(invoke("correlate", "--store", tmp_path / "m.zarr", "--tasks", "a,b"), "different models")


def test_compare_adversarial_command(tmp_path):
    store = Store(tmp_path / "a.zarr", mode="a")
    put_ranking(store, "sst2", accuracies(1))
    put_ranking(store, "adv_sst2", accuracies(2), baseline="sst2")
    result = invoke(
        "compare-adversarial", "--store", tmp_path / "a.zarr", "--task", "adv_sst2", "--percent", "10,50", "--json"
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    stored = Store(tmp_path / "a.zarr").result("adversarial", "adv_sst2@sst2")
    assert [r["percent"] for r in payload["rows"]] == [10.0, 50.0] and payload["clean"] == "sst2"
    assert payload["rows"][1]["overlap"] == pytest.approx(float(stored["overlap"].sel(percent=50.0)))
    table = invoke("compare-adversarial", "--store", tmp_path / "a.zarr", "--task", "adv_sst2", "--percent", "10")
    assert "top neurons of sst2 on adv_sst2" in table.output and "Spearman's rho" in table.output
    one_error_line(
        invoke("compare-adversarial", "--store", tmp_path / "a.zarr", "--task", "adv_sst2", "--percent", "1"),
        "not a single neuron",
    )


def test_report_of_a_tiny_run(tiny_store, tmp_path):
    """The accuracy table reads the ranked split's predictions; the distributions the real ranking."""
    result = invoke("report", "--store", tiny_store, "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    ds = Store(tiny_store).extraction("toy")
    acc = (ds["prediction"] == ds["label"]).mean("example").values
    index = (tmp_path / "r" / "index.md").read_text()
    assert f"{acc.mean():.3f} ± {acc.std():.3f}" in index
    assert (tmp_path / "r" / "predictivity-distribution.png").stat().st_size > 1000
    assert "neuron-accuracy-distribution.svg" in index
