"""Recipes: mergekit's YAML, parsed into pydantic models and checked all at once.

`load_recipe` accepts a path, a YAML string, a dict or a Recipe. Every problem is collected
into one RecipeError (typos come with a suggestion) before any model is opened. The models
themselves are in `kinmerge.core.schema`.
"""
from __future__ import annotations

from pathlib import Path

from kinmerge.errors import KinmergeError, RecipeError
from kinmerge.io.configfile import read_yaml, validate
from kinmerge.core.schema import Recipe
from kinmerge.core.validate import recipe_problems

MAX_PROBLEMS = 50  # problems listed in one error; the rest are counted


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
