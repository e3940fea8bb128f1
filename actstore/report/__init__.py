"""Every figure of the paper from what a store holds, as PNG and SVG, plus an index page (Markdown and HTML) and a
static HTML page per top skill neuron of each task.

Numbers come from ``actstore.analysis`` (and results stored by ``transfer``, ``correlate``, ``suppress``,
``compare-adversarial``); this package only draws. It uses matplotlib's ``Figure`` directly (Agg canvas, no
pyplot state), so it runs headless and in threads. Which kinds of result there are, which of them get figures and
which command makes each, the report learns from ``actstore.results.KINDS``: a section whose data the store lacks is
skipped with a note naming that command, and the index lists every kind the store holds.

What a reviewer checks is built in: every figure has a title; tasks appear clean first, then the adversarial ones in
their clean tasks' order; panels of one figure share their y-axis; figures that summarise spreads say so in the legend.

The package is split by job: ``draw`` (a ``Figure`` from numbers), ``contents`` (which figures a store's data
makes; ``DRAWERS``, what draws each kind of result), ``pages`` (a page per top skill neuron), ``index`` (``render``
and the index page), ``order`` (how tasks are ordered and files named).
"""

from __future__ import annotations

from .contents import LAYER_PERCENT, Drawn, figures
from .draw import (
    AT_CHANCE,
    CHANCE,
    OWN,
    RANDOM,
    SKILL,
    accuracy_figure,
    adversarial_figure,
    heatmap,
    layer_figure,
    predictivity_figure,
    suppression_figure,
)
from .index import FORMATS, Report, render, table_rows
from .order import task_order
from .pages import (
    EXAMPLES,
    NEURON_PAGES,
    STYLE,
    TOKEN_PREDICTIVITY_LABEL,
    Activity,
    activities,
    activity_figure,
    comparable,
    rank_rows,
    token_figure,
    write_neuron_pages,
)

__all__ = [
    "AT_CHANCE",
    "CHANCE",
    "EXAMPLES",
    "FORMATS",
    "LAYER_PERCENT",
    "NEURON_PAGES",
    "OWN",
    "RANDOM",
    "SKILL",
    "STYLE",
    "TOKEN_PREDICTIVITY_LABEL",
    "Activity",
    "Drawn",
    "Report",
    "accuracy_figure",
    "activities",
    "activity_figure",
    "adversarial_figure",
    "comparable",
    "figures",
    "heatmap",
    "layer_figure",
    "predictivity_figure",
    "rank_rows",
    "render",
    "suppression_figure",
    "table_rows",
    "task_order",
    "token_figure",
    "write_neuron_pages",
]
