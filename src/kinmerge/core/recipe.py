"""Recipes: mergekit's YAML, parsed into pydantic models and checked all at once.

`load_recipe` accepts a path, a YAML string, a dict or a Recipe. Every problem is collected
into one RecipeError (typos come with a suggestion) before any model is opened. The models
themselves are in `kinmerge.core.schema`.
"""
from __future__ import annotations

from pathlib import Path

from kinmerge.errors import RecipeError
from kinmerge.io.configfile import read_yaml, validate
from kinmerge.core.schema import Recipe
from kinmerge.core.validate import recipe_problems

MAX_PROBLEMS = 50  # problems listed in one error; the rest are counted


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
    problems = recipe_problems(recipe)
    if len(problems) > MAX_PROBLEMS:
        problems = problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more"]
    if problems:
        raise RecipeError(problems, where=where, fix="correct the recipe; "
                          "`kinmerge methods` lists each method's parameters")
    return recipe
