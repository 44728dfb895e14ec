"""Errors kinmerge raises on bad input.

Every message says what went wrong, where (file, model, tensor, recipe key) and how to fix it.
The CLI prints a KinmergeError as that message and exits non-zero without a traceback; any
other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import reprlib
from typing import Any


class KinmergeError(Exception):
    """Root of every error caused by the user's input rather than by a bug.

    `fix` and `where` speak Python (`pass overwrite=True`); when the command line words them
    differently (`pass --overwrite`), `cli_fix` / `cli_where` say it so, and the CLI prints
    `cli_message`. Each reader sees the names they typed.
    """

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None,
                 cli_where: str | None = None, cli_fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        self.cli_where, self.cli_fix = cli_where, cli_fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The error as Python callers read it (str(e))."""
        return self._render(self.where, self.fix)

    @property
    def cli_message(self) -> str:
        """The error as the command line prints it: flags, not keywords."""
        return self._render(self.cli_where or self.where, self.cli_fix or self.fix)

    def _render(self, where: str | None, fix: str | None) -> str:
        parts = [self.what]
        if where:
            parts.append(f"  where: {where}")
        if fix:
            parts.append(f"  fix: {fix}")
        return "\n".join(parts)


class ConfigError(KinmergeError):
    """A configuration (recipe, evolve.yml, breed.yml) is malformed; `problems` lists every
    problem found, not only the first."""

    subject = "configuration"

    def __init__(self, problems: list[str], *, where: str | None = None, fix: str | None = None,
                 subject: str | None = None, cli_fix: str | None = None):
        self.problems = list(problems)
        self.subject = subject or self.subject
        n = len(self.problems)
        what = f"{self.subject} has {n} problem{'s' if n != 1 else ''}:\n" + "\n".join(
            f"  - {p}" for p in self.problems
        )
        super().__init__(what, where=where, fix=fix, cli_fix=cli_fix)


class RecipeError(ConfigError):
    """The recipe is malformed."""

    subject = "recipe"


class PlanError(RecipeError):
    """The recipe is well-formed but does not fit the models it names (shapes, layers, tensors)."""


class ModelLoadError(KinmergeError):
    """A model or one of its files cannot be found or read."""


class UnsafeCheckpointError(ModelLoadError):
    """A pickled checkpoint holds something other than plain tensors; it is refused, never run."""


class OutputExistsError(KinmergeError):
    """The output path exists and overwriting was not asked for."""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


def short_repr(value: Any) -> str:
    """repr of `value` cut to about 80 characters, walking a bounded part of it (a recipe
    value can be large, or shared many times over by YAML aliases)."""
    text = _REPR.repr(value)
    return text if len(text) <= 100 else text[:97] + "..."
