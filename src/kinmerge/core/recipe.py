"""Recipes: mergekit's YAML, parsed into pydantic models and checked all at once.

`load_recipe` accepts a path, a YAML string, a dict or a Recipe. Every problem is collected
into one RecipeError (typos come with a suggestion) before any model is opened.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from kinmerge.io.configfile import read_yaml, validate
from kinmerge.core.dtypes import DTYPES, dtype_of  # noqa: F401  (re-exported)
from kinmerge.errors import KinmergeError, RecipeError
from kinmerge.tokenizer.spec import TokenizerBlock
from kinmerge.core.validate import recipe_problems

# a number written as a string: mergekit reads these as numbers (YAML 1.1 leaves `1e-5`,
# without a dot, a string; quoted numbers are strings too)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


MAX_PROBLEMS = 50  # problems listed in one error; the rest are counted


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_str(v: Any) -> Any:
    """Model references may be given as Paths from Python; the recipe stores strings."""
    return str(v) if isinstance(v, Path) else v


def _parameters(v: Any) -> Any:
    """`parameters:` with no value is no parameters (as in mergekit); numbers written as
    strings become numbers, in gradients and filter lists too."""
    if v is None:
        return {}
    return {k: _numbers(x) for k, x in v.items()} if isinstance(v, dict) else v


def _numbers(x: Any) -> Any:
    if isinstance(x, str) and _NUMBER.fullmatch(x.strip()):
        return float(x)
    if isinstance(x, list):
        return [_numbers(e) for e in x]
    if isinstance(x, dict) and "value" in x:
        return {**x, "value": _numbers(x["value"])}
    return x


class InputModel(_Strict):
    """One entry of `models:`."""

    model: str
    parameters: dict[str, Any] = {}

    _path = field_validator("model", mode="before")(_as_str)
    _params = field_validator("parameters", mode="before")(_parameters)


class SliceSource(_Strict):
    """One source of a slice: a model and the half-open layer range [a, b) it contributes."""

    model: str
    layer_range: tuple[int, int]
    parameters: dict[str, Any] = {}

    _path = field_validator("model", mode="before")(_as_str)
    _params = field_validator("parameters", mode="before")(_parameters)


class Slice(_Strict):
    sources: list[SliceSource]
    parameters: dict[str, Any] = {}
    # mergekit's slice keys: a per-slice base (only the recipe's own is supported) and
    # `residual_weight`, which mergekit 0.1.5 declares and never reads
    base_model: str | None = None
    residual_weight: float | None = None

    _path = field_validator("base_model", mode="before")(_as_str)

    _params = field_validator("parameters", mode="before")(_parameters)


class KinmergeOptions(_Strict):
    """kinmerge's own recipe options, under `kinmerge:` (mergekit ignores the block)."""

    # how TIES/breadcrumbs rank equal magnitudes: "stable" (earliest first, fast) or
    # "mergekit" (torch's unstable sort, as stock mergekit: reproduces its bytes)
    topk: Literal["stable", "mergekit"] = "stable"


class Recipe(_Strict):
    """A merge recipe, as mergekit users write it (plus kinmerge's optional `seed`)."""

    merge_method: str
    base_model: str | None = None
    models: list[InputModel] | None = None
    slices: list[Slice] | None = None
    parameters: dict[str, Any] = {}
    dtype: str | None = None
    out_dtype: str | None = None
    tokenizer_source: str | None = None
    tokenizer: TokenizerBlock | None = None  # mergekit's block: source, tokens, pad_to_multiple_of
    chat_template: str | None = None
    seed: int | None = None  # kinmerge: the seed of stochastic methods (DARE)
    kinmerge: KinmergeOptions | None = None

    _path = field_validator("base_model", mode="before")(_as_str)
    _params = field_validator("parameters", mode="before")(_parameters)

    def model_refs(self) -> list[str]:
        """Every model the recipe names, base first, each once, in recipe order."""
        refs = [self.base_model] if self.base_model else []
        refs += [m.model for m in self.models or []]
        refs += [s.model for sl in self.slices or [] for s in sl.sources]
        return list(dict.fromkeys(refs))

    def to_yaml(self) -> str:
        data = self.model_dump(exclude_none=True, exclude_defaults=True)
        data["merge_method"] = self.merge_method
        return yaml.safe_dump(data, sort_keys=False)


# The other YAML files kinmerge reads, by the key that marks each (checked in this order, on a
# document without merge_method): how to run each, in Python and on the command line.
OTHER_CONFIGS = (
    ("pool", "breed", "kinmerge.search.breed.breed(FILE, OUT)", "kinmerge breed FILE --out DIR"),
    ("ingredients", "soup", "kinmerge.search.soup.soup(FILE, OUT)", "kinmerge soup FILE --out DIR"),
    ("fitness", "evolve", "kinmerge.search.evolve.evolve(FILE, OUT)",
     "kinmerge evolve FILE --out DIR"),
)


class NotARecipeError(RecipeError):
    """A YAML file of another kind (breed, soup, evolve) where a recipe was expected."""

    def __init__(self, what: str, **kw):
        KinmergeError.__init__(self, what, **kw)
        self.problems, self.subject = [what], "recipe"


def refuse_other_config(data, where: str) -> None:
    """A breed, soup or evolve config handed in as a recipe is one error that names what it
    is and the command that runs it, not a line per key a recipe does not know."""
    if not isinstance(data, dict) or "merge_method" in data:
        return
    for key, kind, python, cli in OTHER_CONFIGS:
        if key in data:
            path = where if where != "recipe text" else "FILE"
            an = "an" if kind[0] in "aeiou" else "a"
            raise NotARecipeError(f"this is {an} {kind} config (it has `{key}:`), not a merge "
                                  "recipe", where=where,
                                  fix=f"run it with {python.replace('FILE', repr(path))}",
                                  cli_fix=f"use `{cli.replace('FILE', path)}` (`validate`, "
                                          "`plan` and `merge` read merge recipes)")


def load_recipe(source: "str | Path | dict | Recipe") -> Recipe:
    """Parse and check a recipe from a YAML file, a YAML string, a dict, or a Recipe.

    >>> r = load_recipe({"merge_method": "linear", "models": [
    ...     {"model": "a", "parameters": {"weight": 1}},
    ...     {"model": "b", "parameters": {"weight": 1}}]})
    >>> r.merge_method
    'linear'
    """
    if isinstance(source, Recipe):
        recipe, where = source, "recipe"
    else:
        data, where = read_yaml(source, subject="recipe", example="examples/ties.yml",
                                allow_text=True, error=RecipeError)
        refuse_other_config(data, where)
        recipe = validate(Recipe, data, subject="recipe", where=where, error=RecipeError,
                          fix="correct the keys shown; see examples/ for the format")
    problems = recipe_problems(recipe)
    if len(problems) > MAX_PROBLEMS:
        problems = problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more"]
    if problems:
        raise RecipeError(problems, where=where, fix="correct the recipe; "
                          "`kinmerge methods` lists each method's parameters")
    return recipe
