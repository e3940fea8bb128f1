"""The results the analyses store (results/<kind>/<name>): each kind, what it holds and which command makes it, and
the names they are stored under; apart from what computes them, so that whoever reads them (the analyses, the
report, ``info``) needs no model and no torch."""

from __future__ import annotations

from dataclasses import dataclass


def evaluation_name(task: str, prompts_from: str) -> str:
    """Where the evaluation of ``task`` with the prompts of ``prompts_from`` is stored under results/evaluation."""
    return f"{task}@{prompts_from}"


def suppression_name(task: str, neurons_from: str, mode: str = "zero", scope: str = "layer") -> str:
    """Where a run is stored under results/suppression: ``task@neurons_from``, suffixed unless zero/layer,
    so that e.g. a noise run never replaces the paper's zero-mode curve."""
    name = f"{task}@{neurons_from}"
    return name if (mode, scope) == ("zero", "layer") else f"{name}.{mode}-{scope}"


@dataclass(frozen=True)
class ResultKind:
    """One kind of stored result: its folder under results/, what it holds, the command that makes it, and whether
    the report draws it."""

    name: str
    holds: str
    made_by: str
    drawn: bool


#: every kind of result actstore stores, in the order ``info`` lists them and the report draws them
KINDS: dict[str, ResultKind] = {kind.name: kind for kind in (
    ResultKind("tuning", "dev accuracy curves of the tuned prompts, per seed", "actstore tune", False),
    ResultKind("tuning-seed", "one seed's tuning, kept until every seed is in", "actstore tune", False),
    ResultKind("evaluation", "accuracy per seed of a task's prompts on a task's data", "actstore eval", False),
    ResultKind("transfer", "prompt transferability between tasks (Figures 1/6)", "actstore transfer --tasks A,B,...",
               True),
    ResultKind("correlation", "task specificity: Spearman's ρ of predictivities (Figures 3/7)",
               "actstore correlate --tasks A,B", True),
    ResultKind("suppression", "accuracy against the share of skill or random neurons suppressed (Figure 4)",
               "actstore suppress --task A", True),
    ResultKind("adversarial", "overlap of clean and adversarial skill neurons", "actstore compare-adversarial", True),
)}


def describe(kind: str) -> str:
    """What a folder of results holds, for ``info``; a kind this version does not know is named as it is."""
    known = KINDS.get(kind)
    return f"{known.holds} ({known.made_by})" if known else "a kind of result this version does not know"
