"""kinmerge: merge, measure and breed fine-tuned language models.

>>> import kinmerge
>>> kinmerge.merge("examples/ties.yml", "runs/ties")        # doctest: +SKIP

The packages, top to bottom: `cli` (commands) → `search` (evolve, breed, soup and their
runners) → `core` (recipe → plan → execute → merge) → `methods`, `kinship`, `evaluate`,
`tokenizer`, `lineage`, `zoo`, `report`, `io` → the leaves here (`errors`, `record`, `seeds`,
`threads`, `figures`). `docs/development.md` has the map.
"""
from kinmerge import _moved
from kinmerge.errors import KinmergeError
from kinmerge.core.merge import MergedModel, make_plan, merge, merge_to_memory
from kinmerge.core.lora_merge import lora_merge
from kinmerge.core.multistage import merge_stages
from kinmerge.core.recipe import Recipe, load_recipe

__all__ = ["KinmergeError", "MergedModel", "Recipe", "load_recipe", "lora_merge", "make_plan",
           "merge", "merge_stages", "merge_to_memory"]
__version__ = "0.1.0"

_moved.install()


def __getattr__(name: str):
    return _moved.package_attribute(name)
