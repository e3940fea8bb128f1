"""The actstore command line: parses arguments, shows progress, prints results; the library does the work."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import typer

from actstore.errors import ActstoreError

from . import analyze, extract, info, prompts, rank, run, suppress, tune
from .output import err

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Store and analyse FFN activations of prompt-tuned transformers.")


def _clean_errors(command: Callable) -> Callable:
    """Bad input ends in one readable line and exit 1; Ctrl-C in a hint to resume."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ActstoreError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted: finished blocks are stored; run the same command again to continue")
            raise typer.Exit(130) from None

    return run


for module in (run, tune, extract, rank, info, prompts, suppress, analyze):
    target = app
    if hasattr(module, "GROUP"):  # `actstore prompts import ...`: a command group of its own
        target = typer.Typer(no_args_is_help=True, help=module.__doc__.splitlines()[0])
        app.add_typer(target, name=module.GROUP)
    for fn in module.COMMANDS:
        target.command(name=fn.__name__.rstrip("_").replace("_", "-"))(_clean_errors(fn))


def main() -> None:
    app(prog_name="actstore")


if __name__ == "__main__":
    sys.exit(main())
