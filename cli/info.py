"""`actstore info`: what a store holds and how complete it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from actstore.store import open_store

from .output import out


def info(
    store: Annotated[Path, typer.Argument(help="the store to describe")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Describe a store: prompts, extractions (with completeness) and rankings."""
    summary = open_store(store).summary()
    if as_json:
        out.print_json(json.dumps(summary))
        return
    out.print(f"[bold]{store}[/]  actstore store v{summary['schema_version']} (written by actstore {summary['version']})")
    for task, p in summary["prompts"].items():
        out.print(f"  prompts/{task}: {len(p['seeds'])} seeds × {p['n_tokens']} tokens, {p['source']}, model {p['model']}")
    for name, e in summary["extractions"].items():
        acts = f"{e['bytes'] / 1e6:,.1f} MB {e['dtype']}" if e["store_acts"] else "baseline only"
        out.print(f"  extractions/{name}: {e['state']}, {e['blocks_done']}/{e['blocks']} blocks, "
                  f"{e['n_examples']} examples × {len(e['seeds'])} seeds, {acts}, model {e['model']}")
    for task, r in summary["rankings"].items():
        out.print(f"  rankings/{task}: on {r['split']} with the baseline of {r['baseline_task']}, "
                  f"best predictivity {r['best_predictivity']:.4f}")
    for kind, names in summary["results"].items():
        out.print(f"  results/{kind}: {', '.join(names)}")


COMMANDS = [info]
