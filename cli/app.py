"""The actstore command line: parses arguments, shows progress, prints results; the library does the work."""

from __future__ import annotations

import errno
import functools
import logging
import signal
import time
from collections.abc import Callable
from typing import Annotated, NoReturn

import typer
from rich.markup import escape

from actstore import __version__
from actstore.errors import ActstoreError, StoreUnreachable
from actstore_entry import Stopped, stop_message

from . import analyze, examples, extract, info, prompts, rank, run, suppress, tune
from .common import with_store
from .output import configure_logging, err, print_json

app = typer.Typer(
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    help="Store and analyse FFN activations of prompt-tuned transformers.",
)
log = logging.getLogger("actstore.cli")

#: what a command that stopped before its end kept, for the commands whose rerun continues where they stopped (the
#: others start over): the line after a signal, a full disk or a lost object store says it
KEPT = {
    "extract": "finished blocks are stored",
    "tune": "finished seeds are stored",
    "run": "finished blocks and seeds are stored",
    "upgrade": "upgraded groups are kept",
}


def _show_version(value: bool) -> None:
    if value:
        print(f"actstore {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="print the version and exit")
    ] = False,
    verbose: Annotated[
        int,
        typer.Option("--verbose", "-v", count=True, help="-v: what the command does and how long it took; -vv: debug"),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="errors only: no warnings, no progress bars")] = False,
) -> None:
    """Store and analyse FFN activations of prompt-tuned transformers."""
    configure_logging(verbose, quiet)


def _fail(message: str, as_json: bool = False) -> NoReturn:
    """One ``error:`` line on stderr; under --json the same message as ``{"error": ...}`` on stdout, so that a script
    reading stdout always gets one JSON document."""
    if as_json:
        print_json({"error": message})
    else:
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1) from None


def _again(command: str, fix: str = "") -> str:
    """What ``command`` kept when it stopped before its end, and how to go on (after ``fix``, such as freeing
    space); every write is atomic and every finished block or seed marked only once durable, so what is kept is
    whole."""
    kept = KEPT.get(command)
    again = "run the same command again" + (" to continue" if kept else "")
    return "; ".join(filter(None, (kept, f"{fix}, then {again}" if fix else again)))


def _os_fault(exc: OSError, command: str) -> str:
    """A fault of the machine (disk full, read-only file system, I/O error) in one line."""
    reason = exc.strerror or str(exc)
    reason = reason[:1].lower() + reason[1:]  # "No space left on device" inside a sentence
    where = f": {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full ({reason}{where}): {_again(command, 'free some space')}"
    return f"{reason}{where}"


def _clean_errors(command: Callable) -> Callable:
    """Bad input and faults of the machine end in one readable line and exit 1; a signal or a lost object store in
    what the command kept and how to go on."""
    name = command.__name__.rstrip("_").replace("_", "-")

    @functools.wraps(command)
    def run(*args, **kwargs):
        as_json = bool(kwargs.get("as_json"))
        start = time.perf_counter()
        try:
            result = command(*args, **kwargs)
        except StoreUnreachable as exc:
            _fail(f"{exc}: {_again(name)}", as_json)
        except ActstoreError as exc:
            _fail(str(exc), as_json)
        except OSError as exc:
            if exc.errno in (None, errno.EPIPE):  # a library's own message (a bug here), or a closed pipe typer ends
                raise
            _fail(_os_fault(exc, name), as_json)
        except Stopped as stop:  # SIGTERM or Ctrl-C under the console script, which prints the line
            stop.after = _again(name)
            raise
        except KeyboardInterrupt:  # Ctrl-C without the console script's handlers (python -m, the library's tests)
            err.print(stop_message(signal.SIGINT, _again(name)))
            raise typer.Exit(130) from None
        log.info("%s: done in %.1f s", name, time.perf_counter() - start)
        return result

    return run


for module in (run, tune, extract, rank, examples, info, prompts, suppress, analyze):
    target = app
    if hasattr(module, "GROUP"):  # `actstore prompts import ...`: a command group of its own
        target = typer.Typer(no_args_is_help=True, help=(module.__doc__ or "").partition("\n")[0])
        app.add_typer(target, name=module.GROUP)
    for fn in module.COMMANDS:
        target.command(name=fn.__name__.rstrip("_").replace("_", "-"))(_clean_errors(with_store(fn)))


def main() -> None:
    app(prog_name="actstore")


if __name__ == "__main__":
    main()
