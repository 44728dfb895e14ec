"""The model card (README.md) written beside a merged model.

The card is built from what the merge hands it: anything with a recipe's method, base,
model references and YAML text (`CardRecipe`; `kinmerge.core.recipe.Recipe` is one), so
lineage needs nothing of the merge core and the core may import lineage.
"""
from __future__ import annotations

from typing import Protocol

import yaml

from kinmerge.io.refs import split_lora


class CardRecipe(Protocol):
    """What a model card reads of a recipe."""

    merge_method: str
    base_model: str | None

    def model_refs(self) -> list[str]: ...

    def to_yaml(self) -> str: ...


def model_card(recipe: CardRecipe, name: str, *, extra: str = "", text: str | None = None,
               inputs: list[str] | None = None, stages: list[str] = ()) -> str:
    """A Hugging Face model card: front matter (base_model, tags) and the recipe.

    A multi-stage merge's last stage: `text`, the recipe that makes it (its stages
    included); `inputs`, the models its stages read (the front matter's base_model);
    `stages`, the names of earlier stages its recipe uses."""
    models = [m for m in recipe.model_refs()]
    front = {"base_model": inputs if inputs is not None else models,
             "library_name": "transformers", "tags": ["merge", "kinmerge"]}
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "",
        f"# {name}", "",
        f"This model was merged with [kinmerge](https://pypi.org/project/kinmerge/) using the "
        f"**{recipe.merge_method}** method.", "",
    ]
    def stage(m: str) -> str:
        return " (a stage of the recipe below)" if split_lora(m)[0] in stages else ""

    if recipe.base_model:
        lines += [f"Base model: `{recipe.base_model}`{stage(recipe.base_model)}", ""]
    lines += ["## Models merged", ""] + [f"- `{m}`{stage(m)}" for m in models
                                         if m != recipe.base_model]
    lines += ["", "## Recipe", "", "```yaml", (text or recipe.to_yaml()).rstrip(), "```", ""]
    if extra:
        lines += [extra, ""]
    return "\n".join(lines)
