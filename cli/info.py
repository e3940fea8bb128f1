"""`actstore info` and `actstore verify`: what a store holds, how complete and how sound it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from actstore.store import Store, open_store

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


def verify(
    store: Annotated[Path, typer.Argument(help="the store to check")],
    repair: Annotated[bool, typer.Option("--repair", help="mark the blocks of corrupted chunks as not done, "
                                         "so that the same extract command computes them again")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Read back every stored activation chunk and list those whose checksum fails (exit 1 if any, unless repaired)."""
    target = Store(store, mode="r+" if repair else "r")
    if repair:
        with target.writing():
            bad = target.verify(repair=True)
    else:
        bad = target.verify()
    if as_json:
        out.print_json(json.dumps({"corrupted": bad, "repaired": repair}))
    else:
        for c in bad:
            out.print(f"  corrupted: extractions/{c['task']}/{c['split']}{'/decoder' if c['stack'] == 'decoder' else ''}"
                      f" seed {c['seed']} block {c['block']} layer {c['layer']}")
        out.print(f"{len(bad)} corrupted chunk(s) in {store}" + (
            "; their blocks are marked to be extracted again: run the same actstore extract command" if bad and repair
            else ""))
    if bad and not repair:
        raise typer.Exit(1)


COMMANDS = [info, verify]
