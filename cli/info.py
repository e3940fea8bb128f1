"""`actstore info`, `actstore verify` and `actstore upgrade`: what a store holds, how complete and how sound it is,
and bringing an older one to this schema version."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import Scheduler, StoreLocation
from .output import out, print_json


def info(
    store: Annotated[
        StoreLocation, typer.Argument(help="the store to describe: a path or a URL such as s3://bucket/prefix")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Describe a store: prompts, extractions (with completeness) and rankings."""
    from actstore.results import describe
    from actstore.store import open_store
    from actstore.store.paths import extraction_path

    summary = open_store(store).summary()
    if as_json:
        print_json(summary)
        return
    out.print(
        f"[bold]{store}[/]  actstore store v{summary['schema_version']} (written by actstore {summary['version']})"
    )
    for task, p in summary["prompts"].items():
        out.print(
            f"  prompts/{task}: {len(p['seeds'])} seeds × {p['n_tokens']} tokens, {p['source']}, model "
            f"{p['model']} ({p['architecture']}, {p['model_dtype']}), layout {p['layout']}"
        )
    for e in summary["extractions"].values():
        kept = [f"{e['bytes'] / 1e6:,.1f} MB {e['dtype']}"] * e["store_acts"]
        kept += [f"{e['bits_bytes'] / 1e6:,.1f} MB of bits vs. {e['baseline_task']}'s baseline"] * e["store_bits"]
        acts = " + ".join(kept) or "baseline only"
        where = extraction_path(e["task"], e["split"], e["stack"])
        out.print(
            f"  {where}: {e['state']}, {e['blocks_done']}/{e['blocks']} blocks, "
            f"{e['n_examples']} examples × {len(e['seeds'])} seeds, {acts}, model {e['model']} "
            f"({e['architecture']}, {e['model_dtype']}), "
            f"layout {e['layout']} (token 0: {e['token0']}); {e['chunk_check']}"
        )
    for task, r in summary["rankings"].items():
        out.print(
            f"  rankings/{task}: on {r['split']} with the baseline of {r['baseline_task']}, "
            f"best predictivity {r['best_predictivity']:.4f}"
        )
    for kind, names in summary["results"].items():
        out.print(f"  results/{kind}: {', '.join(names)}; {describe(kind)}")


def verify(
    store: Annotated[StoreLocation, typer.Argument(help="the store to check")],
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="mark everything damaged that extract can recompute "
            "(blocks, train segments), rewrite what the specs define, and say what "
            "cannot be recomputed",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    scheduler: Scheduler = None,
) -> None:
    """Check every zarr.json and every chunk (existence and CRC32C) of a store; exit 1 if anything is missing or
    damaged (with --repair: only if something cannot be recomputed)."""
    from actstore.scheduler import using
    from actstore.store.verify import in_progress, verify_path

    with using(scheduler, store):  # the activation chunks are read back on it
        found = verify_path(store, repair=repair)
    unfinished = in_progress(store)
    if as_json:
        print_json({"damage": found, "repaired": repair, "in_progress": unfinished})
    else:
        for d in unfinished:
            out.print(
                f"  in progress: {d['group']}, {d['blocks_done']}/{d['blocks']} blocks stored (not problems: "
                "the extract command running, or run again, writes the rest)"
            )
        for d in found:
            out.print(f"  {d['problem']}: {d['group']} {d['item']} → {d['action']}")
        lost = sum(not d["recomputable"] for d in found)
        out.print(
            f"{len(found)} problem(s) in {store}"
            + (f", {lost} not recomputable" if lost else "")
            + (
                "; run the same actstore extract / rank commands again to recompute what was marked"
                if found and repair
                else "; actstore verify --repair marks what can be recomputed"
                if found
                else ""
            )
        )
    if any(not (repair and d["recomputable"]) for d in found):
        raise typer.Exit(1)


def upgrade(
    store: Annotated[StoreLocation, typer.Argument(help="the store to upgrade in place")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Migrate a store of schema version 2 to version 3 (names and fill values plain xarray reads as they are), in
    place; safe to run again after an interruption, and on a store already at version 3 (it refreshes the
    consolidated metadata). Run it while no other command writes the store."""
    from actstore.store.migrate import upgrade_path

    groups = upgrade_path(store)
    if as_json:
        print_json({"groups": groups})
        return
    for g in groups:
        out.print(f"  {g['group']}: {g['action']}" + (f" ({g['detail']})" if g["detail"] else ""))
    damaged = sum(g["action"] == "damaged" for g in groups)
    upgraded = len(groups) - damaged
    out.print(
        f"{store} is at store schema version 3"
        + (f" ({upgraded} group(s) upgraded)" if upgraded else "")
        + (f"; {damaged} damaged before the upgrade: run actstore verify {store}" if damaged else "")
    )


COMMANDS = [info, verify, upgrade]
