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
    """One kind of stored result: its folder under results/, what it holds, the command that makes it, and how the
    report shows it. A kind with a ``section`` gets figures in the report (drawn by the function that
    ``actstore.report.contents.DRAWERS`` holds for it) and, where a store holds none, the note "<section>: run
    <made_by>"; the report's sections come in the order of the paper's ``figures`` they reproduce, those of none
    last. Every kind, drawn or not, is listed in the report's index and by ``info`` with what it holds."""

    name: str
    what: str
    made_by: str
    section: str | None = None
    figures: tuple[int, ...] = ()

    @property
    def holds(self) -> str:
        """What a result of this kind holds, with the paper's figures it reproduces."""
        if not self.figures:
            return self.what
        return f"{self.what} (Figure{'s' * (len(self.figures) > 1)} {'/'.join(map(str, self.figures))})"


#: every kind of result actstore stores, in the order ``info`` and the report's index list them
KINDS: dict[str, ResultKind] = {
    kind.name: kind
    for kind in (
        ResultKind("tuning", "dev accuracy curves of the tuned prompts, per seed", "actstore tune"),
        ResultKind("tuning-seed", "one seed's tuning, kept until every seed is in", "actstore tune"),
        ResultKind("evaluation", "accuracy per seed of a task's prompts on a task's data", "actstore eval"),
        ResultKind(
            "transfer",
            "prompt transferability between tasks",
            "actstore transfer --tasks A,B,...",
            "transferability",
            (1, 6),
        ),
        ResultKind(
            "correlation",
            "task specificity: Spearman's ρ of predictivities",
            "actstore correlate --tasks A,B",
            "task specificity",
            (3, 7),
        ),
        ResultKind(
            "suppression",
            "accuracy against the share of skill or random neurons suppressed",
            "actstore suppress --task A [--neurons-from B]",
            "suppression",
            (4,),
        ),
        ResultKind(
            "adversarial",
            "overlap of clean and adversarial skill neurons",
            "actstore compare-adversarial",
            "adversarial predictivity",
        ),
    )
}


def describe(kind: str) -> str:
    """What a folder of results holds, for ``info``; a kind this version does not know is named as it is."""
    known = KINDS.get(kind)
    return f"{known.holds} ({known.made_by})" if known else "a kind of result this version does not know"
