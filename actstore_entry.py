"""The ``actstore`` console script: its signal handlers are in place before the slow imports (torch, transformers,
zarr: seconds), so that Ctrl-C or the SIGTERM a scheduler such as SLURM sends before it kills a job ends the
command at any moment, start-up included, with one line, exit code 128 + signal number, and a store that the
same command resumes. A top-level module: anything inside the ``actstore`` package would import the heavy
modules first."""

from __future__ import annotations

import signal
import sys


class Stopped(BaseException):
    """SIGINT or SIGTERM, raised in the main thread wherever it is. Not a KeyboardInterrupt, which click would
    end as a silent exit 130, and not an Exception, which an ``except Exception`` could swallow."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        #: what the command kept and how to go on: the command that was running says (``actstore.cli.app``); at
        #: start-up none had begun
        self.after = "the command had not started; run it again"


def stop_message(signum: int, after: str) -> str:
    what = "interrupted" if signum == signal.SIGINT else f"terminated ({signal.Signals(signum).name})"
    return f"{what}: {after}"


def _raise(signum: int, frame: object) -> None:
    raise Stopped(signum)


def _ignore_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


class _HubCheck:
    """An import finder that, when ``huggingface_hub`` is first imported (only by the commands that load a model or
    data through transformers or datasets), asks once whether the hub answers (``actstore.hub``), then steps aside:
    offline, a name that is not here fails in a second instead of after 30–45 s of retries; ``--help``, ``info``
    and every command that needs no hub pay nothing. It stays in ``sys.meta_path`` (removed while the import system
    walks that list, it would make it skip the next finder) and finds nothing itself."""

    asked = False

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "huggingface_hub" and not self.asked:
            self.asked = True
            from actstore.hub import offline_unless_reachable

            offline_unless_reachable()


def main() -> None:
    signal.signal(signal.SIGINT, _raise)
    signal.signal(signal.SIGTERM, _raise)
    sys.meta_path.insert(0, _HubCheck())
    try:
        # mypy checks cli/ as the package `cli`; pyproject's package-dir installs it as actstore.cli
        from actstore.cli.app import main as run  # type: ignore[import-not-found]

        run()
    except Stopped as stop:
        _ignore_signals()  # a second signal must not cut the message short
        print(stop_message(stop.signum, stop.after), file=sys.stderr)
        sys.exit(128 + stop.signum)
    finally:
        # the command is over: a signal in the interpreter's teardown would print a traceback (Python ignores
        # exceptions raised there) or, once Python restored the default handlers, kill it without a word
        _ignore_signals()
