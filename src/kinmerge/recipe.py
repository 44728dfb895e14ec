"""Recipes: mergekit's YAML, parsed into pydantic models and checked all at once.

`load_recipe` accepts a path, a YAML string, a dict or a Recipe. Every problem is collected
into one RecipeError (typos come with a suggestion) before any model is opened.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from kinmerge.configfile import read_yaml, validate
from kinmerge.errors import RecipeError
from kinmerge.tokenizer.spec import TokenizerBlock

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
          "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float64": torch.float64}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_str(v: Any) -> Any:
    """Model references may be given as Paths from Python; the recipe stores strings."""
    return str(v) if isinstance(v, Path) else v


class InputModel(_Strict):
    """One entry of `models:`."""

    model: str
    parameters: dict[str, Any] = {}

    _path = field_validator("model", mode="before")(_as_str)


class SliceSource(_Strict):
    """One source of a slice: a model and the half-open layer range [a, b) it contributes."""

    model: str
    layer_range: tuple[int, int]
    parameters: dict[str, Any] = {}

    _path = field_validator("model", mode="before")(_as_str)


class Slice(_Strict):
    sources: list[SliceSource]
    parameters: dict[str, Any] = {}


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

    _path = field_validator("base_model", mode="before")(_as_str)

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


def dtype_of(name: str | None) -> torch.dtype | None:
    return DTYPES[name] if name else None


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
        recipe = validate(Recipe, data, subject="recipe", where=where, error=RecipeError,
                          fix="correct the keys shown; see examples/ for the format")
    from kinmerge.validate import recipe_problems  # the checks need the method registry

    problems = recipe_problems(recipe)
    if problems:
        raise RecipeError(problems, where=where, fix="correct the recipe; "
                          "`kinmerge methods` lists each method's parameters")
    return recipe
