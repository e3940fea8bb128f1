"""``render``: the report's figures, neuron pages and the index page (Markdown and HTML) that lists them."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from .. import analysis
from ..errors import ActstoreError
from ..results import KINDS, describe
from ..store import Store
from ..tasks import source_task
from .contents import figures
from .order import task_order
from .pages import NEURON_PAGES, STYLE, write_neuron_pages

FORMATS = ("png", "svg")


@dataclass
class Report:
    """What ``render`` wrote: figures (title, file stem, caption), notes on skipped figures, Table 1 rows, the
    neuron pages (per task: rows of ``ranking.top_neurons`` with the page's path relative to ``out``), and the names of
    the store's results of each kind of ``results.KINDS`` that it holds, in that order."""

    out: Path
    figures: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    table: dict[str, dict] = field(default_factory=dict)
    neurons: dict[str, list[dict]] = field(default_factory=dict)
    results: dict[str, list[str]] = field(default_factory=dict)

    def files(self) -> list[Path]:
        return (
            [self.out / f"{stem}.{fmt}" for _, stem, _ in self.figures for fmt in FORMATS]
            + [self.out / "index.md", self.out / "index.html"]
            + [self.out / row["page"] for rows in self.neurons.values() for row in rows]
        )


def render(store: Store, out: str | Path, *, neuron_pages: int = NEURON_PAGES) -> Report:
    """Draw every figure the store has data for into ``out``, a page for each of the ``neuron_pages`` top neurons
    of every ranked task under ``out/neurons/``, and write index.md and index.html there."""
    report = Report(Path(out))
    report.table = analysis.accuracy_table(store, task_order(_accuracy_tasks(store, store.ranked_tasks())))
    try:
        report.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ActstoreError(f"cannot write the report to {report.out}: {exc.strerror or exc}") from None
    for drawn in figures(store, report.skipped):
        for fmt in FORMATS:  # nothing clipped at the edges
            drawn.figure.savefig(report.out / f"{drawn.stem}.{fmt}", dpi=150, bbox_inches="tight")
        report.figures.append((drawn.title, drawn.stem, drawn.caption))
    if neuron_pages > 0:
        report.neurons = write_neuron_pages(store, report.out, neuron_pages)
    report.results = {kind: names for kind in KINDS if (names := store.results(kind))}
    _write_index(report)
    return report


def _accuracy_tasks(store: Store, ranked: list[str]) -> list[str]:
    """Ranked tasks, then tasks evaluated with their own prompts only."""
    evaluated = [
        n.split("@")[0] for n in store.results("evaluation") if n.split("@")[1] == source_task(n.split("@")[0])
    ]
    return list(dict.fromkeys([*ranked, *evaluated]))


def table_rows(table: dict[str, dict]) -> tuple[list[str], dict[str, list[str]]]:
    """Table 1's layout: one column per task, one row per model, cells mean ± std ('–' where not run)."""
    tasks = list(table)
    models = dict.fromkeys(row["model"] for row in table.values())
    cells = {
        model: [f"{table[t]['mean']:.3f} ± {table[t]['std']:.3f}" if table[t]["model"] == model else "–" for t in tasks]
        for model in models
    }
    return tasks, cells


def _write_index(report: Report) -> None:
    tasks, cells = table_rows(report.table)
    md = ["# actstore report", "", "## Model accuracy (mean ± std over seeds)", ""]
    page = [
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>actstore report</title>{STYLE}",
        "<h1>actstore report</h1>",
        "<h2>Model accuracy (mean ± std over seeds)</h2>",
    ]
    if tasks:
        md += ["| model | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        md += [f"| {model} | " + " | ".join(row) + " |" for model, row in cells.items()] + [""]
        page.append(
            "<table border=1><tr><th>model</th>"
            + "".join(f"<th>{html.escape(t)}</th>" for t in tasks)
            + "</tr>"
            + "".join(
                f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                for m, row in cells.items()
            )
            + "</table>"
        )
    else:
        md += ["No model accuracies in the store (extract and rank, or actstore eval).", ""]
        page.append("<p>No model accuracies in the store (extract and rank, or actstore eval).</p>")
    for title, stem, caption in report.figures:
        md += [f"## {title}", "", f"![{title}]({stem}.png)", "", f"{caption} ([SVG]({stem}.svg))", ""]
        page += [
            f"<h2>{html.escape(title)}</h2>",
            f"<img src='{stem}.png' alt='{html.escape(title)}'>",
            f"<p>{html.escape(caption)} (<a href='{stem}.svg'>SVG</a>)</p>",
        ]
    if report.neurons:
        md += [
            "## Top skill neurons",
            "",
            "A page per neuron: predictivity per token, activation by label against the "
            "baseline, its rank in each task, its top and bottom examples.",
            "",
        ]
        page += [
            "<h2>Top skill neurons</h2>",
            "<p>A page per neuron: predictivity per token, activation by label "
            "against the baseline, its rank in each task, its top and bottom examples.</p>",
        ]
        for task, rows in report.neurons.items():
            md += [
                f"- **{task}**: "
                + ", ".join(f"[L{r['layer']} n{r['neuron']} ({r['predictivity']:.3f})]({r['page']})" for r in rows)
            ]
            page.append(
                f"<p><b>{html.escape(task)}</b>: "
                + ", ".join(
                    f"<a href='{html.escape(r['page'])}'>L{r['layer']} n{r['neuron']} ({r['predictivity']:.3f})</a>"
                    for r in rows
                )
                + "</p>"
            )
        md.append("")
    if report.results:
        listed = [(f"results/{kind}", ", ".join(names), describe(kind)) for kind, names in report.results.items()]
        md += ["## Results in the store", ""]
        md += [f"- `{where}`: {names}; {what}" for where, names, what in listed] + [""]
        page += (
            ["<h2>Results in the store</h2><ul>"]
            + [
                f"<li><code>{html.escape(where)}</code>: {html.escape(names)}; {html.escape(what)}</li>"
                for where, names, what in listed
            ]
            + ["</ul>"]
        )
    if report.skipped:
        md += ["## Not in the store", ""] + [f"- {note}" for note in report.skipped] + [""]
        page += ["<h2>Not in the store</h2><ul>"] + [f"<li>{html.escape(n)}</li>" for n in report.skipped] + ["</ul>"]
    (report.out / "index.md").write_text("\n".join(md))
    (report.out / "index.html").write_text("\n".join(page) + "\n</html>\n")
