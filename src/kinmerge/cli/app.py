"""The `kinmerge` command group and how it reports errors.

Commands live in one module per area (merge.py, kinship.py, ...) and register themselves on
`main`; each parses its options, calls one API function, and prints.
"""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from kinmerge.errors import KinmergeError

console = Console(stderr=True)


class KinmergeGroup(click.Group):
    """Prints a KinmergeError as its message and exits 2; -v keeps the traceback."""

    def invoke(self, ctx: click.Context):
        with exit_on_error(lambda: bool(ctx.obj and ctx.obj.get("verbose"))):
            return super().invoke(ctx)


@contextmanager
def exit_on_error(verbose: bool | Callable[[], bool] = False) -> Iterator[None]:
    """The one way a command fails on a KinmergeError: its message on stderr, exit status 2
    (with `verbose`, the traceback first). Every command and entry point goes through it."""
    try:
        yield
    except KinmergeError as e:
        if verbose() if callable(verbose) else verbose:
            console.print_exception()
        report_error(e)
        sys.exit(2)


def report_error(e: KinmergeError) -> None:
    """One clear message on stderr; never interpreted as markup (recipes contain brackets)."""
    console.print(Text("error: ", style="bold red") + Text(e.message), highlight=False,
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
