"""The `kinmerge` command group and how it reports errors.

Commands live in one module per area (merge.py, kinship.py, ...) and register themselves on
`main`; each parses its options, calls one API function, and prints.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import click
from rich.console import Console, ConsoleDimensions
from rich.logging import RichHandler
from rich.text import Text

from kinmerge.errors import KinmergeError
from kinmerge.io.outpath import environment_error

console = Console(stderr=True)
PIPE_WIDTH = 10_000  # no wrapping when piped: a table row stays whole, no word is cut


class Stdout(Console):
    """Results on stdout: at the terminal's width on a terminal; piped or redirected, never
    wrapped, so a table row is one line (a multi-line cell aside) and no word is broken at
    80 columns (`kinmerge methods | cat`, `kinmerge plan R > plan.txt`)."""

    @property
    def size(self) -> ConsoleDimensions:
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, super().size.height)
        return super().size

    @size.setter
    def size(self, new_size) -> None:
        Console.size.fset(self, new_size)


class KinmergeGroup(click.Group):
    """Prints a KinmergeError as its message and exits 2; -v keeps the traceback."""

    def invoke(self, ctx: click.Context):
        previous = install_signal_handlers()
        try:
            with exit_on_error(lambda: bool(ctx.obj and ctx.obj.get("verbose"))):
                return super().invoke(ctx)
        except KeyboardInterrupt:
            console.print("interrupted: partial outputs removed", highlight=False)
            sys.exit(130)
        finally:
            if previous is not None:  # a host process (tests, notebooks) keeps its own
                signal.signal(signal.SIGTERM, previous)


@contextmanager
def exit_on_error(verbose: bool | Callable[[], bool] = False) -> Iterator[None]:
    """The one way a command fails: a KinmergeError, or an error of the environment (disk
    full, permissions), is one message on stderr and exit status 2 (with `verbose`, the
    traceback first); anything else is a bug and keeps its traceback."""
    try:
        yield
    except KinmergeError as e:
        if verbose() if callable(verbose) else verbose:
            console.print_exception()
        report_error(e)
        sys.exit(2)
    except Exception as e:
        env = environment_error(e)
        if env is None:
            raise
        report_error(env)
        sys.exit(2)


def install_signal_handlers():
    """SIGTERM cleans up as Ctrl-C does: it unwinds the stack (temporary folders removed,
    locks released) and exits 143. A second SIGTERM during that cleanup is ignored.
    Returns the handler it replaced (None off the main thread, where none can be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        logging.getLogger("kinmerge").warning("terminated: removing partial outputs")
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, terminate)


def report_error(e: KinmergeError) -> None:
    """One clear message on stderr; never interpreted as markup (recipes contain brackets)."""
    console.print(Text("error: ", style="bold red") + Text(e.cli_message), highlight=False,
                  soft_wrap=True)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False,
                                              show_time=False)], force=True)


@click.group(cls=KinmergeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging; tracebacks on errors.")
@click.version_option(package_name="kinmerge")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """kinmerge: merge, measure and breed fine-tuned language models."""
    ctx.ensure_object(dict)["verbose"] = verbose
    setup_logging(verbose)
