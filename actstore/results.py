"""The names results are stored under (results/<kind>/<name>), apart from what computes them: whoever reads them
(the analyses, the report) finds them without importing a model or torch."""

from __future__ import annotations


def evaluation_name(task: str, prompts_from: str) -> str:
    """Where the evaluation of ``task`` with the prompts of ``prompts_from`` is stored under results/evaluation."""
    return f"{task}@{prompts_from}"


def suppression_name(task: str, neurons_from: str, mode: str = "zero", scope: str = "layer") -> str:
    """Where a run is stored under results/suppression: ``task@neurons_from``, suffixed unless zero/layer,
    so that e.g. a noise run never replaces the paper's zero-mode curve."""
    name = f"{task}@{neurons_from}"
    return name if (mode, scope) == ("zero", "layer") else f"{name}.{mode}-{scope}"
