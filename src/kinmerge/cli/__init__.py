"""Command line: `kinmerge COMMAND ...` (see `kinmerge --help`)."""
from kinmerge.cli.app import main

# Each import registers its commands on `main`.
from kinmerge.cli import merge  # noqa: E402,F401
from kinmerge.cli import lineage  # noqa: E402,F401
from kinmerge.cli import publish  # noqa: E402,F401
from kinmerge.cli import breed  # noqa: E402,F401
from kinmerge.cli import soup  # noqa: E402,F401
from kinmerge.cli import report  # noqa: E402,F401
from kinmerge.cli import evolve  # noqa: E402,F401
from kinmerge.cli import kinship  # noqa: E402,F401
from kinmerge.cli import zoo  # noqa: E402,F401
from kinmerge.cli import demo  # noqa: E402,F401
from kinmerge.cli import evaluate  # noqa: E402,F401

__all__ = ["main"]
